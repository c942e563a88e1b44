"""Side effects sent after commit: step dispatch, live events, and messages to other runs."""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

__all__ = ["dispatch_steps", "publish_events", "run_group", "run_later", "tenant_group"]

logger = logging.getLogger("apg.engine")


def run_group(run_id: object) -> str:
	"""The Channels group every live event of one run goes to."""
	return f"run.{run_id}"


def tenant_group(tenant_id: object) -> str:
	"""The Channels group every live event of one tenant goes to."""
	return f"tenant.{tenant_id}"


def dispatch_steps(steps: list[tuple[str, str]], *, priority: int) -> None:
	"""Send one task per step to its queue (``steps`` or ``steps.cpu``)."""
	if not steps:
		return
	from workflows.tasks import execute_step_task

	# Redis serves broker priority 0 first; run priority 9 is the most urgent.
	broker_priority = 9 - max(0, min(9, priority))
	for step_id, queue in steps:
		execute_step_task.apply_async(args=(step_id,), queue=queue, priority=broker_priority)


def publish_events(*, run_id: str, tenant_id: str, events: list[tuple[int, str, str, Any]]) -> None:
	"""Publish a transition's RunEvents to the run's and the tenant's groups (one message each)."""
	if not events:
		return
	layer = get_channel_layer()
	if layer is None:  # pragma: no cover - a channel layer is always configured
		return
	batch = [
		{"run": run_id, "seq": seq, "type": type_, "step": step, "data": data}
		for seq, type_, step, data in events
	]
	try:
		async_to_sync(layer.group_send)(run_group(run_id), {"type": "run.events", "events": batch})
		async_to_sync(layer.group_send)(tenant_group(tenant_id), {"type": "tenant.events", "events": batch})
	except Exception:  # noqa: BLE001 - live delivery is best effort; clients resume from RunEvent rows
		logger.warning(
			"could not publish live events of run %s", run_id, exc_info=True, extra={"run_id": run_id}
		)


def run_later(what: str, *args: Any, countdown: float | None = None) -> None:
	"""Send an engine task: ``deliver`` a happening, ``fire_timer``, ``admit`` queued runs, ``start`` a run."""
	from workflows import tasks

	task = {
		"deliver": tasks.deliver_task,
		"fire_timer": tasks.fire_timer_task,
		"admit": tasks.admit_runs_task,
		"start": tasks.start_run_task,
		"notify_approval": tasks.notify_approval_task,
	}[what]
	task.apply_async(args=args, countdown=countdown)
