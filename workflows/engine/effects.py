"""Side effects sent after commit: step dispatch, live events, and messages to other runs."""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import threading
import time
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer

__all__ = [
	"LivePublisher",
	"dispatch_steps",
	"live",
	"publish_events",
	"run_group",
	"run_later",
	"tenant_group",
]

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
	"""Publish a transition's RunEvents to the run's and the tenant's groups (one message each).

	Each event is encoded to JSON here, once, and travels as ``{"run", "seq", "json"}``: the
	WebSocket consumers forward that text to each of their clients instead of encoding the same
	event again for every connection.
	"""
	if not events:
		return
	batch = [
		{
			"run": run_id,
			"seq": seq,
			"json": json.dumps({"run": run_id, "seq": seq, "type": type_, "step": step, "data": data}),
		}
		for seq, type_, step, data in events
	]
	live.send(run_group(run_id), {"type": "run.events", "events": batch})
	live.send(tenant_group(tenant_id), {"type": "tenant.events", "events": batch})


class LivePublisher:
	"""Sends live-event messages (``{"type": ..., "events": [...]}``) to Channels groups without holding up the engine.

	``async_to_sync(layer.group_send)`` starts a thread, an event loop and a Redis connection
	per call (about 6 ms of CPU). Instead each process keeps one event loop on a daemon thread
	(made again after a fork: Celery's prefork children inherit no threads) and the engine
	hands messages to it and moves on. One sender coroutine drains them in order, merging
	consecutive messages for the same group, so a process's events reach a group in the order
	they were committed. Delivery is best effort by design: clients that miss a message
	resume from the RunEvent rows. When the channel layer is unreachable the backlog is
	capped (``max_pending``), and the oldest messages are dropped with a warning.

	The in-memory channel layer (development without Redis, tests) is not safe to use from
	another thread's loop, so it gets the plain ``async_to_sync`` call.
	"""

	logger = logging.getLogger("apg.engine")

	def __init__(self, *, max_pending: int = 10_000) -> None:
		self.max_pending = max_pending
		self._lock = threading.Lock()
		self._pid: int | None = None
		self._loop: asyncio.AbstractEventLoop | None = None
		self._pending: collections.deque[tuple[str, dict[str, Any]]] = collections.deque()
		self._wakeup: asyncio.Event | None = None
		self._dropped = 0
		self._busy = False

	def send(self, group: str, message: dict[str, Any]) -> None:
		"""Queue ``message`` for ``group``; returns at once."""
		layer = get_channel_layer()
		if layer is None:  # pragma: no cover - a channel layer is always configured
			return
		if isinstance(layer, InMemoryChannelLayer):
			self._send_now(layer, group, message)
			return
		loop = self._running_loop()
		with self._lock:
			if len(self._pending) >= self.max_pending:
				self._pending.popleft()
				self._dropped += 1
			self._pending.append((group, message))
		loop.call_soon_threadsafe(self._wake)

	def flush(self, timeout: float = 5.0) -> bool:
		"""Wait until every queued message has been handed to the layer (tests, shutdown)."""
		deadline = time.monotonic() + timeout
		while time.monotonic() < deadline:
			with self._lock:
				idle = not self._pending and not self._busy
			if idle:
				return True
			time.sleep(0.002)
		return False

	def _send_now(self, layer: Any, group: str, message: dict[str, Any]) -> None:
		try:
			async_to_sync(layer.group_send)(group, message)
		except Exception as exc:  # noqa: BLE001 - live delivery is best effort; clients resume from RunEvent rows
			self._log_failed(group, exc)

	def _running_loop(self) -> asyncio.AbstractEventLoop:
		with self._lock:
			if self._loop is None or self._pid != os.getpid():
				loop = asyncio.new_event_loop()
				self._pending.clear()
				self._busy = False
				self._wakeup = None
				ready = threading.Event()

				def serve() -> None:
					asyncio.set_event_loop(loop)
					self._wakeup = asyncio.Event()
					loop.create_task(self._sender())
					loop.call_soon(ready.set)
					loop.run_forever()

				threading.Thread(target=serve, name="apg-live-events", daemon=True).start()
				ready.wait(5)
				self._loop, self._pid = loop, os.getpid()
			return self._loop

	def _wake(self) -> None:
		assert self._wakeup is not None
		self._wakeup.set()

	async def _sender(self) -> None:
		assert self._wakeup is not None
		layer = get_channel_layer()
		assert layer is not None
		while True:
			await self._wakeup.wait()
			self._wakeup.clear()
			while True:
				with self._lock:
					if not self._pending:
						self._busy = False
						break
					self._busy = True
					taken = list(self._pending)
					self._pending.clear()
					dropped, self._dropped = self._dropped, 0
				if dropped:
					self._log_dropped(dropped)
				for group, message in _merged(taken):
					try:
						await layer.group_send(group, message)
					except Exception as exc:  # noqa: BLE001 - best effort, see the class docstring
						self._log_failed(group, exc)

	def _log_failed(self, group: str, error: Exception) -> None:
		self.logger.warning(
			"could not publish live events to %s: %s", group, error, exc_info=error, extra={"group": group}
		)

	def _log_dropped(self, count: int) -> None:
		self.logger.warning(
			"dropped %s live-event message(s): the channel layer is not keeping up",
			count,
			extra={"dropped": count},
		)


def _merged(messages: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
	"""One message per group and type, with all their events in order (one Redis call per group)."""
	merged: dict[tuple[str, str], dict[str, Any]] = {}
	for group, message in messages:
		found = merged.get((group, message["type"]))
		if found is None:
			merged[(group, message["type"])] = {**message, "events": list(message["events"])}
		else:
			found["events"].extend(message["events"])
	return [(group, message) for (group, _), message in merged.items()]


live = LivePublisher()


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
