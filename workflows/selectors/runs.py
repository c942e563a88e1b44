"""Reads of runs, their steps and their event history."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from django.db.models import F, QuerySet, Window
from django.db.models.functions import RowNumber

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
	"run_events_between",
	"run_get",
	"run_list",
	"run_steps",
	"tenant_events_after",
]


def run_list(
	*, actor: User, tenant: Tenant, workflow_id: Any = None, status: str | None = None
) -> QuerySet[Run]:
	"""The tenant's runs, newest first, with what a list shows of their workflow, version and starter."""
	require(actor=actor, tenant=tenant, perm=Perm.RUN_VIEW)
	runs = Run.objects.for_tenant(tenant).select_related("workflow", "version", "started_by")
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


def run_steps(*, actor: User, run: Run, batch: Sequence[Run] = ()) -> QuerySet[StepRun]:
	"""Every step attempt of a run, in the order they were created.

	``batch`` adds more runs of the same tenant to the one query (GraphQL reads the steps of a
	page of runs at once). Reading a batch needs the role to allow reading runs tenant-wide:
	an object grant on one run's workflow does not cover the others'.
	"""
	if batch:
		require(actor=actor, tenant=run.tenant, perm=Perm.RUN_VIEW)
	else:
		require(actor=actor, tenant=run.tenant, perm=Perm.RUN_VIEW, obj=run.workflow)
	return (
		StepRun.objects.for_tenant(run.tenant)
		.filter(run_id__in=[run.pk, *(other.pk for other in batch)])
		.order_by("created_at", "key", "attempt")
	)


def run_events_after(
	*, actor: User | None, run: Run, after: int = 0, limit: int = 1000, batch: Sequence[Run] = ()
) -> QuerySet[RunEvent]:
	"""The run's events with a sequence number above ``after``, in order: what a client missed.

	``batch`` adds more runs of the same tenant to the one query, ``limit`` events each, ordered
	by run then sequence (GraphQL reads the events of a page of runs at once); like
	:func:`run_steps`, a batch needs the role to allow reading runs tenant-wide.
	"""
	if actor is not None:
		require(actor=actor, tenant=run.tenant, perm=Perm.RUN_VIEW, obj=None if batch else run.workflow)
	limit = max(1, min(limit, 10_000))
	events = RunEvent.objects.for_tenant(run.tenant).filter(seq__gt=max(0, after))
	if not batch:
		return events.filter(run=run).order_by("seq")[:limit]
	ranked = events.filter(run_id__in=[run.pk, *(other.pk for other in batch)]).annotate(
		rank_in_run=Window(RowNumber(), partition_by=[F("run_id")], order_by=[F("seq").asc()])
	)
	return ranked.filter(rank_in_run__lte=limit).order_by("run_id", "seq")


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


def tenant_events_after(*, actor: User, tenant: Tenant, after: UUID, limit: int) -> QuerySet[RunEvent]:
	"""The tenant's run events with an id above ``after``, in id order (the tenant stream's replay).

	Event ids are uuid7, so ``after`` built from a time selects the events created after it
	(through the primary key index); see :class:`workflows.consumers.TenantEventsConsumer` for
	why that is not the order they were committed in.
	"""
	require(actor=actor, tenant=tenant, perm=Perm.RUN_VIEW)
	return RunEvent.objects.for_tenant(tenant).filter(id__gt=after).order_by("id")[:limit]


def run_events_between(
	*, tenant: Tenant, run_id: Any, after: int, before: int, created_after: UUID | None = None
) -> QuerySet[RunEvent]:
	"""One run's events with ``after < seq < before`` (and an id above ``created_after``), in order.

	For a stream that already checked the reader (it fills a gap between two events it holds).
	"""
	events = RunEvent.objects.for_tenant(tenant).filter(run_id=run_id, seq__gt=after, seq__lt=before)
	if created_after is not None:
		events = events.filter(id__gt=created_after)
	return events.order_by("seq")
