"""Executing one step attempt on a worker: claim it, run its action outside any lock, record once.

At-least-once execution, exactly-once recording: a redelivered task finds the step claimed
or finished and does nothing; a worker that dies leaves a lease that expires, and the
reaper dispatches the step again with the same idempotency key.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import close_old_connections, transaction
from django.utils import timezone

from connectors.errors import ActionError
from connectors.registry import default_registry
from connectors.sdk import ActionContext, CancelSignal, NetworkPolicy, execute_sync
from workflows.context import run_context
from workflows.engine.core import StepError, StepFailed, StepSucceeded
from workflows.engine.runtime import advance
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
from workflows.services.secrets import secret_values

__all__ = ["StepExecutor", "record_outcome"]

_HOSTNAME = socket.gethostname()


class StepExecutor:
	"""Runs one claimed step and keeps its lease alive while the action executes."""

	logger = logging.getLogger("apg.worker")

	def __init__(self, step_id: str) -> None:
		self.step_id = step_id
		self.cancel = CancelSignal()
		self._stop = threading.Event()

	def run(self) -> None:
		"""Claim, execute and record; a no-op for a step that is not (or no longer) scheduled."""
		now = timezone.now()
		lease = timedelta(seconds=settings.STEP_LEASE_SECONDS)
		claimed = (
			StepRun.objects._unfiltered()
			.filter(pk=self.step_id, status=StepStatus.SCHEDULED)
			.update(status=StepStatus.RUNNING, started_at=now, lease_expires_at=now + lease, worker=_HOSTNAME)
		)
		if not claimed:
			self._log_skipped()
			return
		step = StepRun.objects._unfiltered().select_related("run").get(pk=self.step_id)
		with run_context(run_id=step.run_id, step_id=step.pk):
			outcome = self.execute(step)
			record_outcome(step, outcome)

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
		heartbeat = threading.Thread(target=self._heartbeat, name=f"lease-{step.pk}", daemon=True)
		heartbeat.start()
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
		finally:
			self._stop.set()
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

	def _heartbeat(self) -> None:
		"""Extend the lease every third of it; pass on a cancellation asked for meanwhile."""
		interval = settings.STEP_LEASE_SECONDS / 3
		while not self._stop.wait(interval):
			try:
				now = timezone.now()
				StepRun.objects._unfiltered().filter(pk=self.step_id, status=StepStatus.RUNNING).update(
					lease_expires_at=now + timedelta(seconds=settings.STEP_LEASE_SECONDS)
				)
				if StepRun.objects._unfiltered().filter(pk=self.step_id, cancel_requested=True).exists():
					self.cancel.set(reason="the run cancelled this step")
			except Exception:  # noqa: BLE001 - a missed heartbeat only shortens the lease
				self.logger.warning("heartbeat of step %s failed", self.step_id, exc_info=True)
			finally:
				close_old_connections()

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


def record_outcome(step: StepRun, outcome: StepSucceeded | StepFailed) -> bool:
	"""Record an attempt's outcome once and advance its run in the same transaction.

	Returns False when the attempt was already recorded (a redelivery) or cancelled.
	"""
	finished = {
		"status": StepStatus.SUCCEEDED if isinstance(outcome, StepSucceeded) else StepStatus.FAILED,
		"finished_at": timezone.now(),
		"lease_expires_at": None,
	}
	with transaction.atomic():
		recorded = (
			StepRun.objects._unfiltered()
			.filter(pk=step.pk, status=StepStatus.RUNNING, attempt=step.attempt)
			.update(**finished)
		)
		if not recorded:
			return False
		advance(step.run_id, outcome)
	return True
