"""Bulk run operations: start, cancel, retry and delete many runs in one call; deleting a run.

Every item goes through the same single-run service as its one-at-a-time endpoint
(:func:`~workflows.services.runs.run_start`, :func:`~workflows.services.runs.run_cancel`,
:func:`~workflows.services.runs.run_retry`, :func:`run_delete`), so permissions, validation
and audit events are identical. Each item runs in its own transaction (a savepoint when the
caller already holds one): one item's failure never rolls back another's, and partial
success is the normal outcome. Items are processed in order, one after another.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from django.conf import settings
from django.db import transaction

from workflows.engine.status import TERMINAL_STEP_STATUSES
from workflows.errors import Conflict, FieldError, NotFound, ServiceError, ValidationFailed
from workflows.models import Run, StepRun, Tenant, User
from workflows.permissions import require
from workflows.roles import Perm
from workflows.selectors.definitions import workflow_get
from workflows.selectors.runs import run_get
from workflows.services.audit import audit_record
from workflows.services.runs import run_cancel, run_retry, run_start

__all__ = [
	"BulkItemResult",
	"BulkStartItem",
	"bulk_limit_check",
	"run_bulk_cancel",
	"run_bulk_delete",
	"run_bulk_retry",
	"run_bulk_start",
	"run_delete",
]

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class BulkStartItem:
	"""One run to start: the workflow (id or slug) and what :func:`run_start` takes."""

	workflow: str
	input: Any = None
	version: int | None = None
	priority: int | None = None
	tags: list[str] | None = None


@dataclass(frozen=True, slots=True)
class BulkItemResult:
	"""What happened to item ``index``: the run it made or changed, or the error it met.

	``run`` is None after a delete (and after a failure); ``run_id`` names the run the item
	was about when known. ``error`` is a :class:`~workflows.errors.ServiceError` the client
	can act on, or, for a bug, any other exception (logged where it happened).
	"""

	index: int
	run_id: str | None
	run: Run | None = None
	error: Exception | None = None

	@property
	def ok(self) -> bool:
		"""Whether the item succeeded."""
		return self.error is None


def bulk_limit_check(*, count: int, pointer: str) -> None:
	"""Refuse an empty request or one over API_BULK_MAX_ITEMS, naming the setting.

	Raises:
		ValidationFailed: with ``pointer`` at the list.
	"""
	limit: int = settings.API_BULK_MAX_ITEMS
	if count == 0:
		raise ValidationFailed.single(pointer, "The list is empty.", "Give at least one item.")
	if count > limit:
		raise ValidationFailed.single(
			pointer,
			f"{count} items is more than the {limit} a bulk request may carry (API_BULK_MAX_ITEMS).",
			f"Split it into requests of at most {limit} items.",
		)


def _distinct_ids(run_ids: Sequence[str], pointer: str) -> None:
	seen: dict[str, int] = {}
	errors: list[FieldError] = []
	for index, run_id in enumerate(run_ids):
		key = str(run_id).lower()
		if key in seen:
			errors.append(
				FieldError(
					f"{pointer}/{index}",
					f"This run id appears twice (first at index {seen[key]}).",
					"List each run once.",
				)
			)
		else:
			seen[key] = index
	if errors:
		raise ValidationFailed(errors, "Some run ids appear more than once.")


class _Batch:
	"""Runs each item in its own transaction and keeps its outcome."""

	logger = logging.getLogger("apg.api.bulk")

	def __init__(self, *, actor: User, tenant: Tenant, action: str) -> None:
		self.actor = actor
		self.tenant = tenant
		self.action = action

	def each(
		self, entries: Sequence[_T], ref: Callable[[_T], str | None], do: Callable[[_T], Run | None]
	) -> list[BulkItemResult]:
		results: list[BulkItemResult] = []
		for index, entry in enumerate(entries):
			try:
				with transaction.atomic():
					run = do(entry)
			except Exception as exc:  # a ServiceError, or a bug in one item that must not stop the rest
				if not isinstance(exc, ServiceError):
					self._log_item_crashed(index, ref(entry), exc)
				results.append(BulkItemResult(index=index, run_id=ref(entry), error=exc))
			else:
				run_id = str(run.pk) if run is not None else ref(entry)
				results.append(BulkItemResult(index=index, run_id=run_id, run=run))
		self._log_done(results)
		return results

	def _log_item_crashed(self, index: int, run_id: str | None, exc: Exception) -> None:
		self.logger.error(
			"bulk %s: item %s failed unexpectedly",
			self.action,
			index,
			exc_info=exc,
			extra={"tenant_id": str(self.tenant.pk), "run_id": run_id, "actor": str(self.actor.pk)},
		)

	def _log_done(self, results: list[BulkItemResult]) -> None:
		failed = sum(1 for r in results if not r.ok)
		self.logger.info(
			"bulk %s: %s of %s items succeeded",
			self.action,
			len(results) - failed,
			len(results),
			extra={"tenant_id": str(self.tenant.pk), "actor": str(self.actor.pk), "failed": failed},
		)


def run_bulk_start(*, actor: User, tenant: Tenant, items: Sequence[BulkStartItem]) -> list[BulkItemResult]:
	"""Start one run per item (each like ``POST /workflows/{id}/runs/``); an outcome per item."""
	bulk_limit_check(count=len(items), pointer="/items")

	def start(item: BulkStartItem) -> Run:
		workflow = workflow_get(actor=actor, tenant=tenant, workflow_id=item.workflow)
		return run_start(
			actor=actor,
			workflow=workflow,
			input=item.input,
			version=item.version,
			priority=item.priority,
			tags=item.tags,
		)

	return _Batch(actor=actor, tenant=tenant, action="start").each(items, lambda _: None, start)


def _each_run(
	*, actor: User, tenant: Tenant, action: str, run_ids: Sequence[str], do: Callable[[Run], Run | None]
) -> list[BulkItemResult]:
	bulk_limit_check(count=len(run_ids), pointer="/run_ids")
	_distinct_ids(run_ids, "/run_ids")
	return _Batch(actor=actor, tenant=tenant, action=action).each(
		run_ids, str, lambda run_id: do(run_get(actor=actor, tenant=tenant, run_id=run_id))
	)


def run_bulk_cancel(
	*, actor: User, tenant: Tenant, run_ids: Sequence[str], compensate: bool = False, reason: str = ""
) -> list[BulkItemResult]:
	"""Cancel each run (as ``POST /runs/{id}/cancel/``, the same options for all); an outcome per run."""
	return _each_run(
		actor=actor,
		tenant=tenant,
		action="cancel",
		run_ids=run_ids,
		do=lambda run: run_cancel(actor=actor, run=run, compensate=compensate, reason=reason),
	)


def run_bulk_retry(*, actor: User, tenant: Tenant, run_ids: Sequence[str]) -> list[BulkItemResult]:
	"""Retry each failed run from its failed steps (as ``POST /runs/{id}/retry/``); an outcome per run."""
	return _each_run(
		actor=actor,
		tenant=tenant,
		action="retry",
		run_ids=run_ids,
		do=lambda run: run_retry(actor=actor, run=run),
	)


def run_bulk_delete(*, actor: User, tenant: Tenant, run_ids: Sequence[str]) -> list[BulkItemResult]:
	"""Delete each finished run (see :func:`run_delete`); an outcome per run."""

	def delete(run: Run) -> None:
		run_delete(actor=actor, run=run)

	return _each_run(actor=actor, tenant=tenant, action="delete", run_ids=run_ids, do=delete)


def run_delete(*, actor: User, run: Run) -> None:
	"""Delete a finished run for good, with its steps, history, timers, subscriptions and approvals.

	Runs are execution records without soft delete, so this cannot be undone; the
	``run.delete`` audit event keeps who deleted which run, of which workflow and version, and
	how it had ended. Needs ``run.operate`` (operators, admins, owners), like cancel and retry.
	Only a finished run whose steps have all stopped may go: anything else still has the
	engine or a worker writing to it. Sub-workflow runs it started stay, without a parent.

	Raises:
		NotFound: no such run in the tenant (or deleted meanwhile).
		PermissionDenied: the role does not allow ``run.operate``.
		Conflict: the run has not finished, or a step of it is still executing.
	"""
	tenant = run.tenant
	require(actor=actor, tenant=tenant, perm=Perm.RUN_OPERATE, obj=run.workflow)
	with transaction.atomic():
		locked = (
			Run.objects.for_tenant(tenant)
			.select_for_update(of=("self",))
			.select_related("workflow", "version")
			.filter(pk=run.pk)
			.first()
		)
		if locked is None:
			raise NotFound()
		if not locked.is_finished:
			raise Conflict(f"The run is {locked.status}; only finished runs can be deleted. Cancel it first.")
		steps = StepRun.objects.for_tenant(tenant).filter(run=locked)
		if steps.exclude(status__in=TERMINAL_STEP_STATUSES).exists():
			raise Conflict("A step of this run is still stopping; try again once it has finished.")
		audit_record(
			actor=actor,
			tenant=tenant,
			action="run.delete",
			obj=locked,
			extra={
				"workflow": locked.workflow.slug,
				"version": locked.version.number,
				"status": locked.status,
				"steps": steps.count(),
				"started_at": locked.started_at.isoformat() if locked.started_at else None,
			},
		)
		# The cascade takes the run's steps, history, timers, subscriptions and approvals.
		locked.delete()
