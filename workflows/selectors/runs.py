"""Reads of runs, their steps and their event history."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from django.db import connection
from django.db.models import F, QuerySet, Window
from django.db.models.functions import RowNumber

from workflows.errors import NotFound
from workflows.models import Approval, Run, RunEvent, RunTag, StepRun, Tenant, User
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
	"run_list_time_field",
	"run_steps",
	"tenant_events_after",
]


def run_list(
	*,
	actor: User,
	tenant: Tenant,
	workflow_id: Any = None,
	status: str | None = None,
	tag: str | None = None,
	version: int | None = None,
	created_after: Any = None,
	created_before: Any = None,
	ordering: Sequence[str] = ("-created_at", "-id"),
) -> QuerySet[Run]:
	"""The tenant's runs in ``ordering``, with what a list shows of their workflow, version and starter.

	``tag`` keeps the runs carrying exactly that tag (case-sensitive). When it is the only
	narrowing filter and the order is by creation time, the list reads the tag's
	:class:`~workflows.models.RunTag` rows in their index's order (tenant, tag, created_at,
	run) and stops after a page, however rare the tag: it is then ordered by ``tagged_at``,
	the tag row's copy of ``created_at``, which bounds (time range, cursor) must use too (see
	:func:`run_list_time_field`). With a status or workflow as well, or ordered by priority,
	PostgreSQL matches the runs' ``tags`` itself (``tags @> '["tag"]'``), which lets its
	planner start from a status, workflow or priority index when that is cheaper; SQLite reads
	the tag rows either way. Both give the same runs. ``created_after`` (inclusive) and
	``created_before`` bound the field the list is ordered by, so they bound that range read.
	"""
	require(actor=actor, tenant=tenant, perm=Perm.RUN_VIEW)
	runs = Run.objects.for_tenant(tenant).select_related("workflow", "version", "started_by")
	if workflow_id is not None:
		runs = runs.filter(workflow_id=workflow_id)
	if status:
		runs = runs.filter(status=status)
	if version is not None:
		runs = runs.filter(version__number=version)
	when = "created_at"
	if tag is not None and workflow_id is None and not status and ordering[0].lstrip("-") == when:
		# One join row per run (a run's tags are unique). Not joined on created_at as well: the
		# planner would take the two equalities for independent and expect almost no rows.
		runs = runs.filter(tag_rows__tenant_id=tenant.pk, tag_rows__tag=tag).annotate(
			tagged_at=F("tag_rows__created_at")
		)
		when = "tagged_at"
		ordering = [field.replace("created_at", when) for field in ordering]
	elif tag is not None and connection.vendor == "postgresql":
		runs = runs.filter(tags__contains=[tag])
	elif tag is not None:
		runs = runs.filter(id__in=RunTag.objects.for_tenant(tenant).filter(tag=tag).values("run_id"))
	if created_after is not None:
		runs = runs.filter(**{f"{when}__gte": created_after})
	if created_before is not None:
		runs = runs.filter(**{f"{when}__lt": created_before})
	return runs.order_by(*ordering)


def run_list_time_field(runs: QuerySet[Run]) -> str:
	"""What a list from :func:`run_list` is ordered and bounded by: ``tagged_at`` or ``created_at``."""
	return "tagged_at" if "tagged_at" in runs.query.annotations else "created_at"


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
