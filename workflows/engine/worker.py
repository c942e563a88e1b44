"""Executing one step attempt on a worker: run its action outside any lock, record it once.

At-least-once execution, exactly-once recording: a redelivered task finds the step finished
(or claimed by a live worker) and does nothing, and of two executions of one attempt only
the first outcome is recorded; a worker that dies mid-step leaves a lease that expires, and
the reaper dispatches the step again with the same idempotency key.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Collection
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connections, router, transaction
from django.utils import timezone

from connectors.errors import ActionError
from connectors.registry import default_registry
from connectors.sdk import ActionContext, CancelSignal, NetworkPolicy, execute_sync
from workflows.context import run_context
from workflows.engine.core import StepError, StepFailed, StepSucceeded
from workflows.engine.runtime import WORKER_NAME, AdvanceResult, Recording, advance
from workflows.engine.status import StepStatus
from workflows.expressions import (
	ExpressionError,
	compile_template,
	find_secret_refs,
	redact,
	resolve_secret_refs,
)
from workflows.expressions.errors import UnknownSecretError
from workflows.models import StepRun
from workflows.rows import model_rows
from workflows.services.secrets import secret_values

__all__ = ["LeaseKeeper", "StepExecutor", "record_outcome"]


class StepExecutor:
	"""Claims one step attempt, runs its action outside any lock, and records the outcome once.

	The claim (``scheduled -> running`` with a lease) is one ``UPDATE ... RETURNING`` that
	also loads the step; it is committed without waiting for the WAL flush (a claim lost in a
	database crash only leaves a ``scheduled`` step, which the reaper dispatches again). The
	outcome is recorded in the same transaction as the run's next transition. The process's
	:class:`LeaseKeeper` renews the lease of actions that run long and passes on cancellation,
	so a worker that dies mid-step is noticed by the reaper.
	"""

	logger = logging.getLogger("apg.worker")

	def __init__(self, step_id: str) -> None:
		self.step_id = step_id
		self.cancel = CancelSignal()
		self.started = time.monotonic()

	def run(self, *, queue: str | None = None) -> int:
		"""Claim, execute and record; a no-op for a step that is not (or no longer) scheduled.

		``queue``: the queue this worker consumes. When the step's outcome dispatches a next
		step to the same queue, this worker runs it itself, claimed in the same transaction,
		without a trip through the broker — up to ``STEP_CONTINUE_MAX_STEPS`` steps or
		``STEP_CONTINUE_MAX_SECONDS``, after which the next one goes through the broker
		(where higher-priority work may overtake it). Returns the number of steps executed.
		"""
		step = claim_step(self.step_id)
		if step is None:
			self._log_skipped()
			return 0
		return self.run_claimed(step, queue=queue)

	def run_claimed(self, step: StepRun, *, queue: str | None = None) -> int:
		"""Execute and record a step this worker has claimed, and the steps it leads to on ``queue`` (see :meth:`run`)."""
		assert step.status == StepStatus.RUNNING, "a claimed step is running"
		deadline = time.monotonic() + settings.STEP_CONTINUE_MAX_SECONDS
		executed = 0
		executor, current = self, step
		while True:
			executed += 1
			within = executed < settings.STEP_CONTINUE_MAX_STEPS and time.monotonic() < deadline
			following = executor.execute_and_record(
				current, continue_on=(queue,) if queue and within else None
			)
			if following is None:
				return executed
			executor, current = StepExecutor(str(following.pk)), following

	def execute_and_record(
		self, step: StepRun, *, continue_on: Collection[str] | None = None
	) -> StepRun | None:
		"""Run a claimed step's action and record its outcome; the next step to run here, if any."""
		self.started = time.monotonic()
		with run_context(run_id=step.run_id, step_id=step.pk):
			keeper = LeaseKeeper.get()
			keeper.watch(self)
			try:
				outcome = self.execute(step)
			finally:
				keeper.unwatch(self)
			return _record(step, outcome, continue_on=continue_on).continued

	def execute(self, step: StepRun) -> StepSucceeded | StepFailed:
		dispatch: dict[str, Any] = step.dispatch or {}
		action = default_registry().get_action(dispatch.get("connector", ""), dispatch.get("action", ""))
		if action is None:
			return StepFailed(
				step.key,
				step.attempt,
				StepError(
					"unknown_action",
					f"no connector action {dispatch.get('connector')}.{dispatch.get('action')} is installed",
				),
			)
		ctx = ActionContext.create(
			idempotency_key=dispatch.get("idempotency_key"),
			run_id=str(step.run_id),
			step_id=str(step.pk),
			tenant_id=str(step.tenant_id),
			attempt=step.attempt,
			cancel=self.cancel,
			network=NetworkPolicy(allow_private=settings.CONNECTOR_ALLOW_PRIVATE_NETWORKS),
			logger=self.logger,
		)
		try:
			params, secrets = self._with_secrets(step)
		except UnknownSecretError as exc:
			message = f"{exc}; add it with `manage.py set_secret` (or under Secrets), or fix the name"
			return StepFailed(step.key, step.attempt, StepError("unknown_secret", message))
		started = time.perf_counter()
		try:
			output = execute_sync(action, params=params, ctx=ctx, timeout=dispatch.get("timeout"))
		except ActionError as exc:
			error = StepError(
				exc.code,
				redact(str(exc), secrets),
				exc.retryable,
				redact(getattr(exc, "details", None), secrets),
			)
			self._log_failed(step, error, time.perf_counter() - started)
			return StepFailed(step.key, step.attempt, error)
		# A service that echoes a credential back must not leak it into outputs and events.
		output = redact(output, secrets)
		template = dispatch.get("output_template")
		if template is not None:
			try:
				output = compile_template(template).evaluate(
					{
						"result": output,
						"input": step.run.input,
						"run": (step.run.state or {}).get("meta", {}),
					},
					timeout=settings.ENGINE_EXPRESSION_TIMEOUT,
				)
			except ExpressionError as exc:
				error = StepError("expression_error", str(exc.at(node_id=step.node_id, field="output")))
				return StepFailed(step.key, step.attempt, error)
		return StepSucceeded(step.key, step.attempt, output)

	def _with_secrets(self, step: StepRun) -> tuple[Any, list[str]]:
		"""The step input with secret://NAME markers replaced by values, and the values used."""
		names = find_secret_refs(step.input)
		if not names:
			return step.input or {}, []
		values = secret_values(step.tenant_id, names)
		return resolve_secret_refs(step.input or {}, lambda name: _lookup(values, name)), list(
			values.values()
		)

	def _log_skipped(self) -> None:
		self.logger.debug(
			"step %s not scheduled any more; skipped", self.step_id, extra={"step_id": self.step_id}
		)

	def _log_failed(self, step: StepRun, error: StepError, seconds: float) -> None:
		self.logger.info(
			"step %s attempt %s failed in %.1f ms: %s",
			step.key,
			step.attempt,
			seconds * 1000,
			error.code,
			extra={"run_id": str(step.run_id), "step_id": str(step.pk), "tenant_id": str(step.tenant_id)},
		)


def _lookup(values: dict[str, str], name: str) -> str:
	if name not in values:
		raise UnknownSecretError(name)
	return values[name]


# The fields a claim sets (its WHERE part is the id and the status "scheduled").
_CLAIM_SETS = ("status", "started_at", "lease_expires_at", "worker", "updated_at")
_CLAIM_SQL: dict[tuple[str, bool], str] = {}


def _claim_sql(connection: Any, no_wait: bool) -> str:
	key = (connection.vendor, no_wait)
	sql = _CLAIM_SQL.get(key)
	if sql is None:
		rows = model_rows(connection, StepRun)
		column, table = rows.column, rows.table
		sets = ", ".join(f"{column[name]} = %s" for name in _CLAIM_SETS)
		# set_config(..., true) lasts until the end of the statement's own transaction.
		no_flush = (
			" FROM (SELECT set_config('synchronous_commit', 'off', true)) AS no_flush" if no_wait else ""
		)
		returned = ", ".join(f"{table}.{c}" for c in rows.columns)
		sql = _CLAIM_SQL[key] = (
			f"UPDATE {table} SET {sets}{no_flush} "  # noqa: S608 - names from model metadata
			f"WHERE {table}.{column['id']} = %s AND {table}.{column['status']} = %s RETURNING {returned}"
		)
	return sql


def claim_step(step_id: str) -> StepRun | None:
	"""Take a scheduled step (``running``, leased to this host) and load it, in one statement.

	None when the step is not scheduled: finished, cancelled, or claimed by another worker
	(a duplicate delivery). On PostgreSQL, outside a transaction, the statement's commit does
	not wait for the WAL flush: a claim lost in a database crash only leaves a ``scheduled``
	step, which the reaper dispatches again.
	"""
	now = timezone.now()
	connection = connections[router.db_for_write(StepRun)]
	rows = model_rows(connection, StepRun)
	values = [  # in the order of the statement's placeholders
		StepStatus.RUNNING.value,
		now,
		now + timedelta(seconds=settings.STEP_LEASE_SECONDS),
		WORKER_NAME,
		now,
		step_id,
		StepStatus.SCHEDULED.value,
	]
	names = (*_CLAIM_SETS, "id", "status")
	params = [
		rows.fields[name].get_db_prep_value(value, connection)
		for name, value in zip(names, values, strict=True)
	]
	no_wait = connection.vendor == "postgresql" and not connection.in_atomic_block
	with connection.cursor() as cursor:
		cursor.execute(_claim_sql(connection, no_wait), params)
		row = cursor.fetchone()
	return None if row is None else rows.load(connection, row)


def record_outcome(step: StepRun, outcome: StepSucceeded | StepFailed) -> bool:
	"""Record an attempt's outcome once, in the same transaction as the run's transition.

	Returns False when the run did not take it: a duplicate delivery of an attempt already
	recorded, or a step the run no longer waits for (the row is closed with what happened).
	"""
	return _record(step, outcome).recorded


def _record(
	step: StepRun, outcome: StepSucceeded | StepFailed, *, continue_on: Collection[str] | None = None
) -> AdvanceResult:
	# A continued step runs after the transition that claimed it has committed.
	assert continue_on is None or not transaction.get_connection().in_atomic_block, (
		"continuing inside a transaction"
	)
	recording = Recording(
		step_id=step.pk,
		key=step.key,
		attempt=step.attempt,
		started_at=step.started_at or timezone.now(),
		worker=WORKER_NAME,
	)
	return advance(step.run_id, outcome, recording=recording, continue_on=continue_on)


class LeaseKeeper:
	"""One thread per worker process that keeps the leases of the steps it is running.

	Every third of ``STEP_LEASE_SECONDS`` a running step's lease is extended, and a
	cancellation asked for by the run is passed to the action (so is a lease that was lost:
	the reaper gave the step to another worker). One thread serves all of the process's
	steps, instead of one per step; actions shorter than a third of the lease never cost it
	a query. Made again after a fork, like every thread.
	"""

	logger = logging.getLogger("apg.worker")
	_instance: tuple[int, LeaseKeeper] | None = None
	_instance_lock = threading.Lock()

	def __init__(self) -> None:
		self._lock = threading.Lock()
		self._watched: dict[str, StepExecutor] = {}
		self._renewed: dict[str, float] = {}
		self._changed = threading.Event()

	@classmethod
	def get(cls) -> LeaseKeeper:
		"""This process's keeper, its thread started on first use."""
		with cls._instance_lock:
			if cls._instance is None or cls._instance[0] != os.getpid():
				keeper = cls()
				threading.Thread(target=keeper._serve, name="apg-lease-keeper", daemon=True).start()
				cls._instance = (os.getpid(), keeper)
			return cls._instance[1]

	def watch(self, executor: StepExecutor) -> None:
		with self._lock:
			self._watched[executor.step_id] = executor
		self._changed.set()

	def unwatch(self, executor: StepExecutor) -> None:
		with self._lock:
			self._watched.pop(executor.step_id, None)
			self._renewed.pop(executor.step_id, None)

	def _serve(self) -> None:
		while True:
			with self._lock:
				idle = not self._watched
			if idle:
				self._changed.wait()
				self._changed.clear()
				continue
			time.sleep(min(1.0, settings.STEP_LEASE_SECONDS / 6))
			try:
				self.tick()
			except Exception as exc:  # noqa: BLE001 - a missed renewal only shortens a lease
				self._log_tick_failed(exc)
			finally:
				close_old_connections()

	def tick(self) -> None:
		"""Renew the leases due (every third of ``STEP_LEASE_SECONDS``) and pass on cancellations."""
		lease = settings.STEP_LEASE_SECONDS
		now_mono = time.monotonic()
		with self._lock:
			watched = list(self._watched.values())
		for executor in watched:
			if now_mono - self._renewed.get(executor.step_id, executor.started) >= lease / 3:
				self._renew(executor, lease)

	def _renew(self, executor: StepExecutor, lease: int) -> None:
		now = timezone.now()
		kept = (
			StepRun.objects._unfiltered()
			.filter(pk=executor.step_id, status=StepStatus.RUNNING)
			.update(lease_expires_at=now + timedelta(seconds=lease))
		)
		with self._lock:
			if executor.step_id in self._watched:  # not finished meanwhile
				self._renewed[executor.step_id] = time.monotonic()
		if not kept:
			executor.cancel.set(reason="the step is no longer running here")
		elif StepRun.objects._unfiltered().filter(pk=executor.step_id, cancel_requested=True).exists():
			executor.cancel.set(reason="the run cancelled this step")

	def _log_tick_failed(self, error: Exception) -> None:
		self.logger.warning("lease renewal failed: %s", error, exc_info=error)
