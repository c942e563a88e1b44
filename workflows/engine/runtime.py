"""The durable half of the engine: apply the core to a run under a row lock and carry out its commands.

:func:`advance` is the only writer of a run's state and status. It locks the run row
(SELECT ... FOR UPDATE), applies a happening with the pure core, writes the outcome in as
few statements as the transition needs, and registers the side effects (step dispatch,
live events, notifications to other runs) to happen after commit, so a worker can never
see a step before its row exists and nothing is sent for a rolled-back transition.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from workflows.dsl import validate_definition
from workflows.engine import core, sql
from workflows.engine.core import Engine, Happening, Stale, StepError, Transition
from workflows.engine.status import RunStatus, StepStatus
from workflows.models import (
	Approval,
	Event,
	EventSubscription,
	Run,
	RunEvent,
	StepRun,
	Timer,
	Workflow,
	WorkflowVersion,
)
from workflows.services import webhooks

__all__ = [
	"AdvanceResult",
	"Recording",
	"advance",
	"engine_for",
	"happening_from_dict",
	"happening_to_dict",
	"now_ts",
]

_FINISHED_STEP = frozenset(
	{StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.CANCELLED, StepStatus.COMPENSATED}
)

# The name a worker records on the steps it runs (``StepRun.worker``).
WORKER_NAME = socket.gethostname()

# Timers due within this many seconds also get a Celery countdown, so short waits and
# retry backoffs do not wait for the next sweep. Longer ones are left to the sweep (every
# half second): a countdown is a message the worker holds until it is due and then runs even
# when the sweep fired the timer first, and in a burst of waiting runs those cost the
# workers more than the runs' steps.
FAST_TIMER_SECONDS = 2.0


def now_ts() -> float:
	"""Seconds since the epoch: the clock the core runs on."""
	return timezone.now().timestamp()


def _dt(ts: float) -> datetime:
	return datetime.fromtimestamp(ts, tz=UTC)


# --- engines, one per published version, built once per process --------------------------------

_engines: OrderedDict[UUID, Engine] = OrderedDict()
_engines_lock = threading.Lock()
_ENGINE_CACHE_SIZE = 512


def engine_for(version: WorkflowVersion | UUID) -> Engine:
	"""The core for a published version (versions never change, so the cache never goes stale)."""
	version_id = version if isinstance(version, UUID) else version.pk
	with _engines_lock:
		found = _engines.get(version_id)
		if found is not None:
			_engines.move_to_end(version_id)
			return found
	definition_doc = (
		version.definition
		if isinstance(version, WorkflowVersion)
		else WorkflowVersion.objects._unfiltered().values_list("definition", flat=True).get(pk=version_id)
	)
	result = validate_definition(definition_doc)
	assert result.definition is not None, f"published version {version_id} does not validate any more"
	engine = Engine(result.definition, expression_timeout=settings.ENGINE_EXPRESSION_TIMEOUT)
	with _engines_lock:
		_engines[version_id] = engine
		while len(_engines) > _ENGINE_CACHE_SIZE:
			_engines.popitem(last=False)
	return engine


# --- happenings as JSON (task messages, replay) ---------------------------------------------------


def happening_to_dict(happening: Happening) -> dict[str, Any]:
	"""A JSON-ready form of a happening."""
	data: dict[str, Any] = {"kind": type(happening).__name__}
	for name in happening.__dataclass_fields__:
		value = getattr(happening, name)
		data[name] = value.as_dict() if isinstance(value, StepError) else value
	return data


def happening_from_dict(data: dict[str, Any]) -> Happening:
	"""Inverse of :func:`happening_to_dict`."""
	values = dict(data)
	kind = values.pop("kind")
	cls = getattr(core, kind)
	if isinstance(values.get("error"), dict):
		error = values["error"]
		values["error"] = StepError(
			error["code"], error["message"], error.get("retryable", False), error.get("details")
		)
	return cls(**values)


# --- advance --------------------------------------------------------------------------------------


@dataclass
class AdvanceResult:
	"""What one call to :func:`advance` did."""

	applied: int = 0
	stale: int = 0
	recorded: bool = False
	continued: StepRun | None = None
	status: RunStatus | None = None
	transitions: list[Transition] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Recording:
	"""The step attempt whose outcome :func:`advance` records (see :func:`workflows.engine.worker.record_outcome`)."""

	step_id: UUID
	key: str
	attempt: int
	started_at: datetime
	worker: str


def advance(
	run_id: UUID | str,
	happening: Happening,
	*,
	now: float | None = None,
	recording: Recording | None = None,
	created: Run | None = None,
	continue_on: Collection[str] | None = None,
) -> AdvanceResult:
	"""Apply ``happening`` to a run: lock, apply, persist, and schedule side effects after commit.

	Follow-up happenings the commands produce for the same run (a buffered event matching a
	new subscription, a sub-workflow that cannot start) are applied in the same transaction.
	Happenings for *other* runs are sent as tasks after commit, so two runs' locks are never
	held together.

	With ``recording`` (a step outcome from a worker), the step's row is written once, with
	the core's record of it; an outcome the core finds stale (a duplicate delivery, or a step
	the run stopped waiting for) only closes the row if it is still open, so a late outcome is
	never recorded twice and never leaves a row for the reaper.

	``created`` is the run itself when it was inserted in the caller's (still open)
	transaction: no one else can see it yet, so it is neither locked nor read back, and it is
	updated in place.

	``continue_on`` (queue names): the calling worker consumes those queues and will run the
	next step itself (a worker recording a step's outcome, or firing a timer). The first new
	step dispatched to one of them is then written already claimed by this worker
	(``running``, with a lease) instead of being sent to the broker, and returned in
	:attr:`AdvanceResult.continued`; a worker that dies before finishing it leaves a lease
	that expires, like any other.
	"""
	# A transaction of its own (not the caller's) is committed with the transition's writes.
	own_transaction = not transaction.get_connection().in_atomic_block
	with transaction.atomic(savepoint=False):
		if created is not None:
			assert str(created.pk) == str(run_id), "created must be the run being advanced"
			run = created
		else:
			# The run's row only, never its tenant's, which would serialise every run of a tenant.
			run = sql.lock_run(run_id)
		applier = _Applier(
			run, now=now if now is not None else now_ts(), recording=recording, continue_on=continue_on
		)
		applier.apply(happening)
		if recording is not None and (recording.key, recording.attempt) not in applier.steps:
			assert isinstance(happening, core.StepSucceeded | core.StepFailed), happening
			applier.close_stale_step(recording, happening)
		applier.flush(commit=own_transaction)
		return applier.result


class _Applier:
	"""Carries out one run's transitions inside the caller's transaction."""

	logger = logging.getLogger("apg.engine")

	def __init__(
		self,
		run: Run,
		*,
		now: float,
		recording: Recording | None = None,
		continue_on: Collection[str] | None = None,
	) -> None:
		self.run = run
		self.now = now
		self.recording = recording
		self.continue_on = continue_on
		self.engine = engine_for(run.version_id)
		self.result = AdvanceResult()
		self.steps: dict[tuple[str, int], core.RecordStep] = {}
		self.new_steps: set[tuple[str, int]] = set()
		self.dispatches: list[core.Dispatch] = []
		self.events: list[RunEvent] = []
		self.timers: dict[tuple[str, str], Timer] = {}
		self.cancelled_timers: set[str] = set()
		self.unsubscribed: set[str] = set()
		self.after_commit: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
		self.queue: list[Happening] = []

	# -- applying ------------------------------------------------------------------------------

	def apply(self, happening: Happening) -> None:
		self.queue.append(happening)
		while self.queue:
			current = self.queue.pop(0)
			try:
				transition = self.engine.apply(self.run.state, current, now=self.now)
			except Stale:
				self.result.stale += 1
				self._log_stale(current)
				continue
			self.result.applied += 1
			self.result.transitions.append(transition)
			previous = self.run.status
			self.run.state = transition.state
			self.run.status = transition.status.value
			if self.run.started_at is None and transition.status != RunStatus.PENDING:
				self.run.started_at = _dt(self.now)
			if previous != self.run.status:
				self._log_status(previous)
			for command in transition.commands:
				self.carry_out(command)
		self.result.status = RunStatus(self.run.status)

	def carry_out(self, command: core.Command) -> None:
		match command:
			case core.RecordStep():
				self.steps[(command.key, command.attempt)] = command
				if command.new:
					self.new_steps.add((command.key, command.attempt))
			case core.Dispatch():
				self.dispatches.append(command)
			case core.Emit():
				self.run.last_seq += 1
				self.events.append(
					RunEvent(
						tenant_id=self.run.tenant_id,
						run_id=self.run.pk,
						seq=self.run.last_seq,
						type=command.type,
						step_key=str(command.data.get("key", ""))[:500],
						data=_jsonable(command.data),
					)
				)
			case core.StartTimer():
				# Written with the transition, replacing a timer of the same step and purpose.
				if command.key in self.cancelled_timers:
					# Cancelled, then started again: the delete goes first (the writes of one
					# statement must not touch the same rows).
					self.cancelled_timers.discard(command.key)
					sql.delete_rows(Timer, run=self.run.pk, key=command.key)
				self.timers[(command.key, command.purpose)] = Timer(
					tenant_id=self.run.tenant_id,
					run=self.run,
					key=command.key,
					purpose=command.purpose,
					fire_at=_dt(command.fire_at),
				)
				delay = command.fire_at - self.now
				if delay <= FAST_TIMER_SECONDS:
					self.later(
						"fire_timer",
						str(self.run.pk),
						command.key,
						command.purpose,
						countdown=max(0.0, delay),
					)
			case core.CancelTimers():
				for started in [t for t in self.timers if t[0] == command.key]:
					del self.timers[started]
				self.cancelled_timers.add(command.key)
			case core.Subscribe():
				self.subscribe(command)
			case core.Unsubscribe():
				self.unsubscribed.add(command.key)  # deleted with the transition's writes
			case core.RequestApproval():
				Approval.objects._unfiltered().update_or_create(
					run=self.run,
					key=command.key,
					defaults={
						"tenant_id": self.run.tenant_id,
						"node_id": command.node_id,
						"title": command.title[:200],
						"instructions": _jsonable(command.instructions),
						"assignees": list(command.assignees),
						"role": command.role or "",
						"form_schema": command.form_schema,
						"deadline_at": _dt(command.deadline_at) if command.deadline_at else None,
						"status": Approval.Status.OPEN,
					},
				)
				self.later("notify_approval", str(self.run.pk), command.key)
			case core.EscalateApproval():
				Approval.objects._unfiltered().filter(
					run=self.run, key=command.key, status=Approval.Status.OPEN
				).update(
					role=command.to_role or "",
					assignees=list(command.to_assignees),
					escalated_at=_dt(self.now),
				)
				self.later("notify_approval", str(self.run.pk), command.key)
			case core.CloseApproval():
				status = {"approved": "approved", "rejected": "rejected", "timed_out": "timed_out"}.get(
					command.outcome, "cancelled"
				)
				Approval.objects._unfiltered().filter(
					run=self.run, key=command.key, status=Approval.Status.OPEN
				).update(status=status)
			case core.StartChild():
				self.start_child(command)
			case core.CancelChild():
				child = (
					Run.objects._unfiltered()
					.filter(parent_run=self.run, parent_step_key=command.key)
					.values_list("pk", flat=True)
					.first()
				)
				if child is not None:
					self.later(
						"deliver",
						str(child),
						happening_to_dict(core.Cancel(reason="the parent run stopped it")),
					)
			case core.CancelStep():
				StepRun.objects._unfiltered().filter(
					run=self.run, key=command.key, attempt=command.attempt
				).update(cancel_requested=True)
			case core.Finish():
				self.run.output = _jsonable(command.output)
				self.run.error = command.error
				self.run.finished_at = _dt(self.now)
				if self.run.parent_run_id:
					finished = core.ChildFinished(
						self.run.parent_step_key,
						command.status == RunStatus.SUCCEEDED,
						self.run.output,
						None
						if command.status == RunStatus.SUCCEEDED
						else StepError(
							(command.error or {}).get("code", "child_failed"),
							(command.error or {}).get(
								"message", f"the sub-workflow run ended {command.status.value}"
							),
						),
					)
					self.later("deliver", str(self.run.parent_run_id), happening_to_dict(finished))
				if (
					settings.TENANT_CONCURRENCY_LIMIT is not None
					or self.engine.definition.defaults.concurrency_limit
				):
					self.later("admit", str(self.run.tenant_id))
			case _:  # pragma: no cover - every command is handled above
				raise AssertionError(f"unhandled command {command!r}")

	def later(self, what: str, *args: Any, countdown: float | None = None) -> None:
		self.after_commit.append((what, args, {"countdown": countdown}))

	def subscribe(self, command: core.Subscribe) -> None:
		# Unsubscribed, then subscribed again: the row is updated below, not deleted at the end.
		self.unsubscribed.discard(command.key)
		correlation = canonical(command.correlation)
		EventSubscription.objects._unfiltered().update_or_create(
			run=self.run,
			key=command.key,
			defaults={
				"tenant_id": self.run.tenant_id,
				"event_type": command.event_type,
				"correlation": correlation,
			},
		)
		# An event may arrive a little before its wait starts: a kept one is delivered now.
		horizon = timezone.now() - timedelta(seconds=settings.EVENT_RETENTION_SECONDS)
		buffered = (
			Event.objects._unfiltered()
			.select_for_update(skip_locked=True)
			.filter(
				tenant_id=self.run.tenant_id,
				type=command.event_type,
				correlation=correlation,
				consumed_at__isnull=True,
				created_at__gte=horizon,
			)
			.order_by("created_at")
			.first()
		)
		if buffered is not None:
			Event.objects._unfiltered().filter(pk=buffered.pk).update(
				consumed_at=timezone.now(), delivered=buffered.delivered + 1
			)
			sql.delete_rows(EventSubscription, run=self.run.pk, key=command.key)
			self.queue.append(core.EventReceived(command.key, _event_payload(buffered)))

	def start_child(self, command: core.StartChild) -> None:
		from workflows.engine.starting import create_run

		workflow = (
			Workflow.objects._unfiltered()
			.filter(tenant_id=self.run.tenant_id, slug=command.workflow, deleted_at__isnull=True)
			.first()
		)
		versions = WorkflowVersion.objects._unfiltered().filter(workflow=workflow)
		version = (
			versions.order_by("-number").first()
			if command.version == "latest"
			else versions.filter(number=command.version).first()
		)
		if workflow is None or version is None:
			self.queue.append(
				core.ChildFinished(
					command.key,
					False,
					error=StepError(
						"sub_workflow_not_found",
						f"workflow {command.workflow!r} has no published version {command.version}",
					),
				)
			)
			return
		child = create_run(
			tenant=self.run.tenant,
			workflow=workflow,
			version=version,
			input=command.input,
			priority=self.run.priority,
			tags=list(self.run.tags),
			actor=None,
			trigger_kind="sub_workflow",
			parent=(self.run, command.key) if command.wait else None,
			trigger_ref=str(self.run.pk),
		)
		self.later("start", str(child.pk))

	# -- writing ---------------------------------------------------------------------------------

	def flush(self, *, commit: bool = False) -> None:
		"""Write the transition (one statement on PostgreSQL) and queue its side effects for after the commit.

		``commit``: the transaction is :func:`advance`'s own, and ends with the writes.
		"""
		if self.result.applied == 0:
			return
		writes = sql.Writes()
		self.write_steps(writes)
		writes.insert(RunEvent, self.events)
		writes.insert(Timer, list(self.timers.values()), replace=("run", "key", "purpose"))
		writes.delete(Timer, run=self.run.pk, key__in=sorted(self.cancelled_timers))
		writes.delete(EventSubscription, run=self.run.pk, key__in=sorted(self.unsubscribed))
		writes.update(
			Run,
			self.run.pk,
			{
				"status": self.run.status,
				"state": self.run.state,
				"output": self.run.output,
				"error": self.run.error,
				"started_at": self.run.started_at,
				"finished_at": self.run.finished_at,
				"last_seq": self.run.last_seq,
				"updated_at": timezone.now(),
			},
		)
		webhook_ids = webhooks.record_deliveries(run=self.run, events=self.events, writes=writes)
		writes.send(commit=commit)
		run_id, tenant_id = str(self.run.pk), str(self.run.tenant_id)
		dispatch_ids = self.dispatch_ids
		events = [(e.seq, e.type, e.step_key, e.data) for e in self.events]
		after = list(self.after_commit)
		priority = self.run.priority

		def side_effects() -> None:
			from workflows.engine import effects

			effects.dispatch_steps(dispatch_ids, priority=priority)
			effects.publish_events(run_id=run_id, tenant_id=tenant_id, events=events)
			for what, args, options in after:
				effects.run_later(what, *args, **options)
			webhooks.dispatch_deliveries(webhook_ids)

		transaction.on_commit(side_effects)

	def close_stale_step(self, recording: Recording, outcome: core.StepSucceeded | core.StepFailed) -> None:
		"""An outcome the core ignored: finish the row if nothing else has (so no reaper re-runs it).

		A duplicate finds the row finished and changes nothing; a step the run stopped waiting
		for (cancelled, compensating) keeps what really happened to it.
		"""
		if isinstance(outcome, core.StepSucceeded):
			what = {"status": StepStatus.SUCCEEDED, "output": _jsonable(outcome.output), "error": None}
		else:
			what = {"status": StepStatus.FAILED, "output": None, "error": outcome.error.as_dict()}
		StepRun.objects._unfiltered().filter(
			pk=recording.step_id,
			attempt=recording.attempt,
			status__in=(StepStatus.SCHEDULED, StepStatus.RUNNING),
		).update(
			**what,
			started_at=Coalesce(F("started_at"), Value(recording.started_at)),
			finished_at=_dt(self.now),
			lease_expires_at=None,
			updated_at=timezone.now(),
		)

	def write_steps(self, writes: sql.Writes) -> None:
		"""Add to ``writes`` the insert of new step rows and an ``UPDATE`` of each existing one.

		The row of the step being recorded is known (no lookup) and written once, with its
		outcome, start time and worker; other rows are updated by their unique key (run, key,
		attempt). Their ids are looked up only for steps the transition dispatches and did not
		create (a dispatch names its row), which may also find that a row is still to be made.
		"""
		self.dispatch_ids: list[tuple[str, str]] = []
		if not self.steps:
			return
		dispatches = {(d.key, d.attempt): d for d in self.dispatches}
		known: dict[tuple[str, int], Any] = {}
		recording = self.recording
		if recording is not None:
			known[(recording.key, recording.attempt)] = recording.step_id
		unknown = {
			step
			for step in self.steps
			if step not in known and step not in self.new_steps and step in dispatches
		}
		if unknown:
			for pk, key, attempt in sql.step_ids(self.run.pk, {key for key, _ in unknown}):
				known.setdefault((key, attempt), pk)
		now = _dt(self.now)
		to_create: list[StepRun] = []
		ids: dict[tuple[str, int], Any] = {}
		for (key, attempt), record in self.steps.items():
			fields: dict[str, Any] = {"status": record.status.value, "error": record.error}
			if record.input is not None:
				fields["input"] = _jsonable(record.input)
			if record.output is not None or record.status == StepStatus.SUCCEEDED:
				fields["output"] = _jsonable(record.output)
			dispatch = dispatches.get((key, attempt))
			if dispatch is not None:
				fields["queue"] = dispatch.queue
				fields["scheduled_at"] = now
				fields["dispatch"] = {
					"connector": dispatch.connector,
					"action": dispatch.action,
					"connection": dispatch.connection,
					"timeout": dispatch.timeout,
					"idempotency_key": dispatch.idempotency_key,
					"output_template": dispatch.output_template,
					"compensation": dispatch.compensation,
				}
			finished = record.status in _FINISHED_STEP
			pk = known.get((key, attempt))
			if pk is None and ((key, attempt) in self.new_steps or (key, attempt) in unknown):
				row = StepRun(
					tenant_id=self.run.tenant_id,
					run=self.run,
					key=key[:500],
					node_id=record.node_id,
					node_type=record.node_type,
					frame=record.frame[:500],
					attempt=attempt,
					finished_at=now if finished else None,
					started_at=now if record.status == StepStatus.RUNNING else None,
					**fields,
				)
				to_create.append(row)
				ids[(key, attempt)] = row.pk
				continue
			keep: set[str] = set()  # filled in only where still empty
			if finished:
				fields["finished_at"] = now
				fields["lease_expires_at"] = None
				keep.add("finished_at")
			elif record.status == StepStatus.RUNNING:
				fields["started_at"] = now
				keep.add("started_at")
			if recording is not None and pk == recording.step_id:
				fields["started_at"] = recording.started_at
				fields["lease_expires_at"] = None
				fields["worker"] = recording.worker[:200]
				keep.add("started_at")
				self.result.recorded = True
			fields["updated_at"] = timezone.now()
			if pk is None:  # a row the core began in an earlier transition
				match = {"run": self.run.pk, "key": key[:500], "attempt": attempt}
				writes.update_matching(StepRun, match, fields, keep=frozenset(keep))
				continue
			ids[(key, attempt)] = pk
			writes.update(StepRun, pk, fields, keep=frozenset(keep))
		continued = self.take_for_worker(to_create)
		writes.insert(StepRun, to_create)
		self.dispatch_ids = [
			(str(ids[(d.key, d.attempt)]), d.queue)
			for d in self.dispatches
			if (d.key, d.attempt) in ids and (continued is None or ids[(d.key, d.attempt)] != continued.pk)
		]

	def take_for_worker(self, new_rows: list[StepRun]) -> StepRun | None:
		"""Claim the first new step for ``continue_on`` for this worker (see :func:`advance`)."""
		if not self.continue_on:
			return None
		new = {(row.key, row.attempt): row for row in new_rows}
		for dispatch in self.dispatches:
			row = new.get((dispatch.key, dispatch.attempt))
			if row is not None and dispatch.queue in self.continue_on:
				now = _dt(self.now)
				row.status = StepStatus.RUNNING
				row.started_at = now
				row.lease_expires_at = now + timedelta(seconds=settings.STEP_LEASE_SECONDS)
				row.worker = (self.recording.worker if self.recording is not None else WORKER_NAME)[:200]
				self.result.continued = row
				return row
		return None

	# -- logging ---------------------------------------------------------------------------------

	def _log_status(self, previous: str) -> None:
		self.logger.info(
			"run %s: %s -> %s",
			self.run.pk,
			previous,
			self.run.status,
			extra={"run_id": str(self.run.pk), "tenant_id": str(self.run.tenant_id)},
		)

	def _log_stale(self, happening: Happening) -> None:
		self.logger.debug(
			"run %s: ignored stale %s",
			self.run.pk,
			type(happening).__name__,
			extra={"run_id": str(self.run.pk)},
		)


def canonical(value: Any) -> str:
	"""The form correlation values are compared in: canonical JSON, so 42 and "42" differ."""
	return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)[:500]


def _event_payload(event: Event) -> dict[str, Any]:
	return {
		"type": event.type,
		"correlation": json.loads(event.correlation) if event.correlation else None,
		"payload": event.payload,
		"event_id": str(event.pk),
	}


def _jsonable(value: Any) -> Any:
	"""Make sure what goes into a JSONField round-trips (tuples become lists, and so on)."""
	return json.loads(json.dumps(value, default=str))
