"""Reads of runs, their steps and their event history."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from workflows.errors import NotFound
from workflows.models import Approval, Run, RunEvent, StepRun, Tenant, User
from workflows.permissions import require
from workflows.roles import Perm
from workflows.selectors.definitions import parse_uuid

__all__ = [
	"approval_get",
	"approval_inbox",
	"step_get_with_attempts",
	"run_events_after",
	"run_get",
	"run_list",
	"run_steps",
]


def run_list(
	*, actor: User, tenant: Tenant, workflow_id: Any = None, status: str | None = None
) -> QuerySet[Run]:
	"""The tenant's runs, newest first."""
	require(actor=actor, tenant=tenant, perm=Perm.RUN_VIEW)
	runs = Run.objects.for_tenant(tenant).select_related("workflow", "version")
	if workflow_id is not None:
		runs = runs.filter(workflow_id=workflow_id)
	if status:
		runs = runs.filter(status=status)
	return runs.order_by("-created_at", "-id")


def run_get(*, actor: User, tenant: Tenant, run_id: Any) -> Run:
	"""One run; missing and another tenant's are the same NotFound."""
	require(actor=actor, tenant=tenant, perm=Perm.RUN_VIEW)
	pk = parse_uuid(run_id)
	run = (
		Run.objects.for_tenant(tenant).select_related("workflow", "version").filter(pk=pk).first()
		if pk
		else None
	)
	if run is None:
		raise NotFound()
	return run


def run_steps(*, actor: User, run: Run) -> QuerySet[StepRun]:
	"""Every step attempt of a run, in the order they were created."""
	require(actor=actor, tenant=run.tenant, perm=Perm.RUN_VIEW, obj=run.workflow)
	return StepRun.objects.for_tenant(run.tenant).filter(run=run).order_by("created_at", "key", "attempt")


def run_events_after(
	*, actor: User | None, run: Run, after: int = 0, limit: int = 1000
) -> QuerySet[RunEvent]:
	"""The run's events with a sequence number above ``after``, in order: what a client missed."""
	if actor is not None:
		require(actor=actor, tenant=run.tenant, perm=Perm.RUN_VIEW, obj=run.workflow)
	return (
		RunEvent.objects.for_tenant(run.tenant)
		.filter(run=run, seq__gt=max(0, after))
		.order_by("seq")[: max(1, min(limit, 10_000))]
	)


def approval_inbox(*, actor: User, tenant: Tenant) -> QuerySet[Approval]:
	"""Open approvals the actor may decide: assigned to them, to their role, or any (admins)."""
	from django.db.models import Q

	from workflows.models import Membership
	from workflows.roles import Role

	require(actor=actor, tenant=tenant, perm=Perm.APPROVAL_DECIDE)
	open_ = Approval.objects.for_tenant(tenant).filter(status=Approval.Status.OPEN).order_by("created_at")
	membership = Membership.objects.for_tenant(tenant).get(user=actor)
	if membership.role in (Role.ADMIN, Role.OWNER):
		return open_
	return open_.filter(Q(assignees__icontains=f'"{actor.get_username()}"') | Q(role=membership.role))


def step_get_with_attempts(*, actor: User, tenant: Tenant, step_id: Any) -> tuple[StepRun, list[StepRun]]:
	"""One step attempt and every attempt of the same step, oldest first."""
	require(actor=actor, tenant=tenant, perm=Perm.RUN_VIEW)
	pk = parse_uuid(step_id)
	step = (
		StepRun.objects.for_tenant(tenant).select_related("run", "run__workflow").filter(pk=pk).first()
		if pk
		else None
	)
	if step is None:
		raise NotFound()
	return step, list(run_steps(actor=actor, run=step.run).filter(key=step.key).order_by("attempt"))


def approval_get(*, actor: User, tenant: Tenant, approval_id: Any) -> Approval:
	"""One approval of the tenant; missing and another tenant's are the same NotFound."""
	require(actor=actor, tenant=tenant, perm=Perm.RUN_VIEW)
	pk = parse_uuid(approval_id)
	approval = Approval.objects.for_tenant(tenant).filter(pk=pk).first() if pk else None
	if approval is None:
		raise NotFound()
	return approval
