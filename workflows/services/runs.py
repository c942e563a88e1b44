"""Services for runs: start (validated input), cancel, pause, resume, retry, re-run; approvals; events.

Each checks permission, applies one happening through :func:`workflows.engine.runtime.advance`
(the only writer of a run's state), and writes an audit event for the person who asked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import jsonschema
from django.db import transaction
from django.utils import timezone

from workflows.engine import core, sql
from workflows.engine.core import IllegalRetry
from workflows.engine.runtime import advance, canonical, engine_for, happening_to_dict
from workflows.engine.starting import create_run, start_if_admitted
from workflows.engine.status import IllegalTransition, RunStatus
from workflows.errors import (
	Conflict,
	FieldError,
	NotFound,
	PermissionDenied,
	ServiceError,
	ValidationFailed,
	refuse_unstorable,
)
from workflows.models import (
	Approval,
	Event,
	Membership,
	Run,
	Tenant,
	User,
	Workflow,
	WorkflowVersion,
)
from workflows.permissions import require
from workflows.roles import Perm, Role
from workflows.rows import first_of_tenant
from workflows.services.audit import audit_record

logger = logging.getLogger("apg.engine")

_T = TypeVar("_T")

__all__ = [
	"EventItem",
	"EventOutcome",
	"approval_decide",
	"event_publish",
	"event_publish_many",
	"run_cancel",
	"run_pause",
	"run_rerun",
	"run_resume",
	"run_retry",
	"run_start",
	"validate_against_schema",
]


def validate_against_schema(value: Any, schema: dict[str, Any], *, pointer: str) -> None:
	"""Raise :class:`ValidationFailed` listing every way ``value`` breaks ``schema`` (JSON Schema 2020-12)."""
	if not schema:
		return
	validator = jsonschema.Draft202012Validator(schema)
	errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
	if errors:
		raise ValidationFailed(
			[
				FieldError(
					pointer + "".join(f"/{part}" for part in error.absolute_path),
					error.message,
					f"See the schema rule {'/'.join(str(p) for p in error.absolute_schema_path)}.",
				)
				for error in errors[:50]
			],
			f"The input does not match the schema ({len(errors)} problem(s)).",
		)


_VERSION_WITHOUT_DEFINITION = tuple(
	f.name for f in WorkflowVersion._meta.concrete_fields if f.name != "definition"
)


def _version(workflow: Workflow, number: int | None) -> WorkflowVersion:
	# The definition is read only when its engine is not cached yet (versions never change).
	equal: dict[str, Any] = (
		{"workflow": workflow.pk} if number is None else {"workflow": workflow.pk, "number": number}
	)
	version = first_of_tenant(
		WorkflowVersion, workflow.tenant_id, equal, order_by="-number", names=_VERSION_WITHOUT_DEFINITION
	)
	if version is None:
		if number is None:
			raise Conflict("The workflow has no published version; publish it before starting runs.")
		raise NotFound(f"Version {number} does not exist.")
	return version


def run_start(
	*,
	actor: User | None,
	workflow: Workflow,
	input: Any = None,
	version: int | None = None,
	priority: int | None = None,
	tags: list[str] | None = None,
	trigger_kind: str = "manual",
	trigger_ref: str = "",
) -> Run:
	"""Start a run of a published version (the latest unless ``version`` is given).

	The input is validated against the version's input schema first: a bad input is refused
	with every field error, and no run is created. Over a concurrency limit, the run waits as
	``pending`` and starts when a slot frees.
	"""
	tenant = workflow.tenant
	if actor is not None:
		require(actor=actor, tenant=tenant, perm=Perm.RUN_START, obj=workflow)
	if workflow.is_archived:
		raise Conflict("The workflow is archived; restore it before starting runs.")
	if priority is not None and not (isinstance(priority, int) and 0 <= priority <= 9):
		raise ValidationFailed.single(
			"/priority", "Priority must be a whole number from 0 to 9.", "9 runs first under contention."
		)
	if tags is not None and not (
		isinstance(tags, list) and all(isinstance(t, str) and 0 < len(t) <= 50 for t in tags)
	):
		raise ValidationFailed.single(
			"/tags", "Tags must be a list of strings of 1 to 50 characters.", 'e.g. ["nightly"]'
		)
	refuse_unstorable(input, "/input")
	refuse_unstorable(tags, "/tags")
	pinned = _version(workflow, version)
	run_input = {} if input is None else input
	validate_against_schema(run_input, engine_for(pinned).definition.input_schema, pointer="/input")
	with transaction.atomic():
		run = create_run(
			tenant=tenant,
			workflow=workflow,
			version=pinned,
			input=run_input,
			priority=priority,
			tags=tags,
			actor=actor,
			trigger_kind=trigger_kind,
			trigger_ref=trigger_ref,
		)
		if actor is not None:
			audit_record(
				actor=actor,
				tenant=tenant,
				action="run.start",
				obj=run,
				extra={"workflow": workflow.slug, "version": pinned.number},
			)
		start_if_admitted(run, created=True)
	return run


def _lifecycle(*, actor: User, run: Run, happening: core.Happening, perm: Perm, action: str) -> Run:
	require(actor=actor, tenant=run.tenant, perm=perm, obj=run.workflow)
	try:
		with transaction.atomic():
			result = advance(run.pk, happening)
			audit_record(
				actor=actor,
				tenant=run.tenant,
				action=f"run.{action}",
				obj=run,
				extra={"status": result.status},
			)
	except (IllegalTransition, IllegalRetry) as exc:
		raise Conflict(str(exc)) from None
	run.refresh_from_db()
	return run


def run_cancel(*, actor: User, run: Run, compensate: bool = False, reason: str = "") -> Run:
	"""Stop a run; with ``compensate`` its completed steps are undone first."""
	return _lifecycle(
		actor=actor,
		run=run,
		happening=core.Cancel(compensate, reason or f"cancelled by {actor.get_username()}"),
		perm=Perm.RUN_OPERATE,
		action="cancel",
	)


def run_pause(*, actor: User, run: Run) -> Run:
	"""Dispatch nothing new until resumed."""
	return _lifecycle(actor=actor, run=run, happening=core.Pause(), perm=Perm.RUN_OPERATE, action="pause")


def run_resume(*, actor: User, run: Run) -> Run:
	"""Continue a paused run."""
	if run.status != RunStatus.PAUSED:
		raise Conflict(f"Cannot resume: the run is {run.status}, not paused.")
	return _lifecycle(actor=actor, run=run, happening=core.Resume(), perm=Perm.RUN_OPERATE, action="resume")


def run_retry(*, actor: User, run: Run) -> Run:
	"""Retry a failed run from its failed steps, keeping every earlier output."""
	return _lifecycle(
		actor=actor, run=run, happening=core.RetryFailed(), perm=Perm.RUN_OPERATE, action="retry"
	)


def run_rerun(*, actor: User, run: Run) -> Run:
	"""Start a new run of the same version with the same input (operators: it repeats production work)."""
	require(actor=actor, tenant=run.tenant, perm=Perm.RUN_OPERATE, obj=run.workflow)
	return run_start(
		actor=actor,
		workflow=run.workflow,
		input=run.input,
		version=run.version.number,
		priority=run.priority,
		tags=list(run.tags),
	)


def _may_decide(actor: User, tenant: Tenant, approval: Approval) -> bool:
	membership = Membership.objects.for_tenant(tenant).filter(user=actor).first()
	if membership is None:
		return False
	role = Role(membership.role)
	if role in (Role.ADMIN, Role.OWNER):
		return True
	if approval.assignees and actor.get_username() in approval.assignees:
		return True
	return bool(approval.role) and role == Role(approval.role)


def approval_decide(
	*,
	actor: User,
	approval: Approval,
	decision: Literal["approved", "rejected"],
	comment: str = "",
	data: Any = None,
) -> Approval:
	"""Approve or reject an open approval (its assignees, its role, or tenant admins)."""
	tenant = approval.tenant
	require(actor=actor, tenant=tenant, perm=Perm.APPROVAL_DECIDE)
	if decision not in ("approved", "rejected"):
		raise ValidationFailed.single(
			"/decision", f"Unknown decision {decision!r}.", "Use 'approved' or 'rejected'."
		)
	if not _may_decide(actor, tenant, approval):
		raise PermissionDenied(Perm.APPROVAL_DECIDE, "This approval is assigned to other people.")
	if decision == "approved":
		validate_against_schema(data if data is not None else {}, approval.form_schema, pointer="/data")
	with transaction.atomic():
		locked = Approval.objects.for_tenant(tenant).select_for_update().get(pk=approval.pk)
		if locked.status != Approval.Status.OPEN:
			raise Conflict(f"This approval is already {locked.status}.")
		result = advance(
			approval.run_id,
			core.ApprovalDecided(approval.key, decision, actor.get_username(), comment or "", data),
		)
		if result.applied == 0:
			raise Conflict("The run is no longer waiting for this approval.")
		Approval.objects.for_tenant(tenant).filter(pk=approval.pk).update(
			status=decision, decided_by=actor, decided_at=timezone.now(), comment=comment or "", data=data
		)
		audit_record(
			actor=actor,
			tenant=tenant,
			action=f"approval.{decision[:-1]}",
			obj=locked,
			extra={"comment": comment},
		)
	approval.refresh_from_db()
	return approval


# Waiting runs an event_publish call advances itself, in its own transaction; more are
# handed to the engine queue (one task each).
INLINE_EVENT_DELIVERIES = 10


def _log_inline_delivery_failed(run_id: Any, error: Exception) -> None:
	logger.error(
		"delivering an event to run %s failed; handed to the engine queue: %s",
		run_id,
		error,
		exc_info=error,
		extra={"run_id": str(run_id)},
	)


@dataclass(frozen=True, slots=True)
class EventOutcome:
	"""Where a published event went."""

	event: Event
	delivered: int
	kept: bool
	# Event triggers of this type the event was handed to; each starts a run after commit
	# when its filter matches (see workflows.services.triggers.event_triggers_start).
	started: int = 0


def event_publish(
	*,
	actor: User | None,
	tenant: Tenant,
	type: str,
	correlation: Any = None,
	payload: Any = None,
	source: str = "api",
) -> EventOutcome:
	"""Deliver an event to every run waiting for it (matching type and correlation).

	An event no run waits for is kept for EVENT_RETENTION_SECONDS and handed to the first
	matching wait that starts in that window; after that it is dropped. Event triggers
	(starting runs) also receive it.
	"""
	if actor is not None:
		require(actor=actor, tenant=tenant, perm=Perm.EVENT_PUBLISH)
	_check_event(type, correlation, payload, pointer="")

	def publish(isolate: bool) -> EventOutcome:
		outcome = _publish(tenant, type, correlation, payload, source, isolate=isolate)
		if actor is not None:
			audit_record(
				actor=actor,
				tenant=tenant,
				action="event.publish",
				obj=outcome.event,
				extra={"delivered": outcome.delivered},
			)
		return outcome

	return _publishing(tenant, publish)


def _publishing(tenant: Tenant, publish: Callable[[bool], _T]) -> _T:
	"""``publish(False)`` in a transaction; if it fails, ``publish(True)`` in a new one.

	Without isolation every event and every run it advances shares one transaction, with no
	savepoint per event or per run: four round trips fewer for each. A failure there rolls
	back all of it (nothing has been sent: the side effects wait for the commit), and the
	second pass isolates each part in a savepoint, so that only the part that fails again is
	refused or handed to the engine queue.
	"""
	try:
		with transaction.atomic():
			return publish(False)
	except Exception as exc:  # noqa: BLE001 - published again, each part on its own
		_log_publish_isolated(tenant, exc)
	with transaction.atomic():
		return publish(True)


def _log_publish_isolated(tenant: Tenant, error: Exception) -> None:
	logger.warning(
		"publishing failed (%s); publishing again with each event and run in a savepoint of its own",
		error,
		extra={"tenant_id": str(tenant.pk)},
	)


def _log_publish_failed(tenant: Tenant, index: int, error: Exception) -> None:
	logger.error(
		"publishing event %s of a batch failed: %s",
		index,
		error,
		exc_info=error,
		extra={"tenant_id": str(tenant.pk)},
	)


@dataclass(frozen=True, slots=True)
class EventItem:
	"""One event of :func:`event_publish_many`."""

	type: str
	correlation: Any = None
	payload: Any = None


def event_publish_many(
	*, actor: User | None, tenant: Tenant, events: Sequence[EventItem], source: str = "api"
) -> list[EventOutcome | Exception]:
	"""Publish many events in one transaction: what :func:`event_publish` does for each.

	One result per event, in order: its outcome, or the error that refused it (a
	:class:`~workflows.errors.ServiceError` the client can act on, or, for a bug, any other
	exception, logged here); the others go on. All that succeeded are committed together,
	which is what makes a batch much cheaper than as many single calls; when one fails, the
	batch is published again with each event in a savepoint of its own, so its failure takes
	back only its own work. One audit event (on the first event published) records the batch.
	"""
	if actor is not None:
		require(actor=actor, tenant=tenant, perm=Perm.EVENT_PUBLISH)
	refused: dict[int, ServiceError] = {}
	for index, item in enumerate(events):
		try:
			_check_event(item.type, item.correlation, item.payload, pointer="")
		except ServiceError as exc:
			refused[index] = exc

	def publish(isolate: bool) -> list[EventOutcome | Exception]:
		results: list[EventOutcome | Exception] = []
		triggers: dict[str, int] = {}

		def one(item: EventItem) -> EventOutcome:
			return _publish(
				tenant, item.type, item.correlation, item.payload, source, triggers, isolate=isolate
			)

		for index, item in enumerate(events):
			if index in refused:
				results.append(refused[index])
			elif not isolate:
				results.append(one(item))
			else:
				try:
					with transaction.atomic():
						results.append(one(item))
				except Exception as exc:  # noqa: BLE001 - one event's failure must not lose the others
					_log_publish_failed(tenant, index, exc)
					results.append(exc)
		published = [r for r in results if isinstance(r, EventOutcome)]
		if actor is not None and published:
			audit_record(
				actor=actor,
				tenant=tenant,
				action="event.publish_many",
				obj=published[0].event,
				extra={"events": len(published), "delivered": sum(r.delivered for r in published)},
			)
		return results

	return _publishing(tenant, publish)


def _check_event(type: Any, correlation: Any, payload: Any, *, pointer: str) -> None:
	if not isinstance(type, str) or not type.strip() or len(type) > 200:
		raise ValidationFailed.single(
			f"{pointer}/type", "An event needs a type of 1 to 200 characters.", "e.g. 'order.paid'"
		)
	refuse_unstorable(type, f"{pointer}/type")
	refuse_unstorable(correlation, f"{pointer}/correlation")
	refuse_unstorable(payload, f"{pointer}/payload")


def _publish(
	tenant: Tenant,
	type: str,
	correlation: Any,
	payload: Any,
	source: str,
	triggers: dict[str, int] | None = None,
	*,
	isolate: bool = False,
) -> EventOutcome:
	"""Store one event and deliver it, in the caller's transaction.

	``triggers``: event trigger counts by type already read in this transaction.
	``isolate``: advance each run in a savepoint, and hand a run whose advance fails to the
	engine queue instead of raising.
	"""
	event = Event(
		tenant=tenant,
		type=type,
		correlation=canonical(correlation) if correlation is not None else "",
		payload=payload if payload is not None else {},
		source=source[:100],
	)
	waiting = sql.store_event(event)  # (id, run id, step key) each
	body = {"type": type, "correlation": correlation, "payload": event.payload, "event_id": str(event.pk)}
	# The first few waiting runs advance in this transaction (locked in id order, so two
	# publishers never wait for each other in a cycle); the rest get a task each.
	ordered = sorted(waiting, key=lambda s: str(s[1]))
	later = ordered[INLINE_EVENT_DELIVERIES:]
	for subscription in ordered[:INLINE_EVENT_DELIVERIES]:
		_, run_id, step_key = subscription
		if not isolate:
			advance(run_id, core.EventReceived(step_key, body))
			continue
		try:
			with transaction.atomic():
				advance(run_id, core.EventReceived(step_key, body))
		except Exception as exc:  # noqa: BLE001 - one run's failure must not lose the event for others
			_log_inline_delivery_failed(run_id, exc)
			later.append(subscription)
	targets = [(str(run_id), happening_to_dict(core.EventReceived(k, body))) for _, run_id, k in later]

	def deliver() -> None:
		from workflows.engine.effects import run_later

		for run_id, happening in targets:
			run_later("deliver", run_id, happening)

	if targets:
		transaction.on_commit(deliver)
	from workflows.services.triggers import event_triggers_schedule

	started = event_triggers_schedule(event=event, known=triggers)
	return EventOutcome(event=event, delivered=len(waiting), kept=not waiting, started=started)
