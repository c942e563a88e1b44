"""Side effects sent after commit: step dispatch, live events, and messages to other runs."""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from asgiref.sync import async_to_sync
from channels import DEFAULT_CHANNEL_LAYER
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings

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

	The engine hands messages to one daemon thread per process (made again after a fork:
	Celery's prefork children inherit no threads) and moves on. The thread drains them in
	order, merging consecutive messages for the same group, so a process's events reach a
	group in the order they were committed. Delivery is best effort by design: clients that
	miss a message resume from the RunEvent rows. When the channel layer is unreachable the
	backlog is capped (``max_pending``), and the oldest messages are dropped with a warning.

	A message is sent at once when the thread has sent nothing for ``linger`` seconds
	(``LIVE_EVENTS_LINGER_SECONDS``); otherwise it waits out the rest of that time, with
	whatever else arrives meanwhile. A worker running a chain of quick steps then publishes
	a few messages a run instead of one per step, and each WebSocket server forwards each to
	its clients once (in one frame in batch mode): fewer, fuller messages are what keep the
	servers' latency low in a burst.

	With the project's channel layer (Redis pub/sub on one server, see
	``config.settings.base.redis_channel_layer``) a drained batch is one pipeline of
	``PUBLISH`` commands on a plain Redis connection, in the layer's own encoding
	(``layer.serialize``) and channel naming: one round trip, and half the CPU of two
	``group_send`` calls on an event loop (0.2 against 0.45 ms a transition, measured on the
	worker, whose steps share its CPU). Any other layer gets ``group_send`` on an event loop
	private to the thread; the in-memory layer (development without Redis, tests), which is
	not safe to use from another thread's loop, gets the plain ``async_to_sync`` call.
	"""

	logger = logging.getLogger("apg.engine")

	def __init__(self, *, max_pending: int = 10_000, linger: float | None = None) -> None:
		self.max_pending = max_pending
		self._linger = linger
		self._forget_parent()
		os.register_at_fork(after_in_child=self._forget_parent)

	def _forget_parent(self) -> None:
		"""Start with nothing queued and no thread (in a new publisher, or in a forked child)."""
		self._ready = threading.Condition()
		self._pid: int | None = None
		self._pending: collections.deque[tuple[str, dict[str, Any]]] = collections.deque()
		self._dropped = 0
		self._busy = False
		self._waiting = False

	def send(self, group: str, message: dict[str, Any]) -> None:
		"""Queue ``message`` for ``group``; returns at once."""
		layer = get_channel_layer()
		if layer is None:  # pragma: no cover - a channel layer is always configured
			return
		if isinstance(layer, InMemoryChannelLayer):
			self._send_now(layer, group, message)
			return
		with self._ready:
			if self._pid != os.getpid():
				self._pid = os.getpid()
				threading.Thread(
					target=self._serve, args=(layer,), name="apg-live-events", daemon=True
				).start()
			if len(self._pending) >= self.max_pending:
				self._pending.popleft()
				self._dropped += 1
			self._pending.append((group, message))
			if self._waiting:  # not while it lingers: it wakes when that is over
				self._ready.notify_all()  # flush() may be waiting on the condition too

	def flush(self, timeout: float = 5.0) -> bool:
		"""Wait until every queued message has been handed to the layer (tests, shutdown)."""
		deadline = time.monotonic() + timeout
		with self._ready:
			while self._pending or self._busy:
				left = deadline - time.monotonic()
				if left <= 0:
					return False
				self._ready.wait(left)
		return True

	def _send_now(self, layer: Any, group: str, message: dict[str, Any]) -> None:
		try:
			async_to_sync(layer.group_send)(group, message)
		except Exception as exc:  # noqa: BLE001 - live delivery is best effort; clients resume from RunEvent rows
			self._log_failed([group], exc)

	def _serve(self, layer: Any) -> None:
		deliver = self.deliverer(layer)
		lingering = settings.LIVE_EVENTS_LINGER_SECONDS if self._linger is None else self._linger
		sent = float("-inf")  # when the last batch went out (monotonic)
		while True:
			with self._ready:
				while not self._pending:
					self._busy = False
					self._ready.notify_all()  # for flush()
					self._waiting = True
					self._ready.wait()
					self._waiting = False
				self._busy = True
				# Lingering after a send gathers a burst's messages into one per group.
				until = sent + lingering
				while (left := until - time.monotonic()) > 0:
					self._ready.wait(left)
				taken = list(self._pending)
				self._pending.clear()
				dropped, self._dropped = self._dropped, 0
			if dropped:
				self._log_dropped(dropped)
			batch = _merged(taken)
			try:
				deliver(batch)
			except Exception as exc:  # noqa: BLE001 - best effort, see the class docstring
				self._log_failed([group for group, _ in batch], exc)
			sent = time.monotonic()

	def deliverer(self, layer: Any) -> Callable[[list[tuple[str, dict[str, Any]]]], None]:
		"""What hands a batch of ``(group, message)`` to ``layer``, on the sender thread."""
		publish = _redis_publisher(layer)
		if publish is not None:
			return publish
		loop = asyncio.new_event_loop()

		def group_send(batch: list[tuple[str, dict[str, Any]]]) -> None:
			for group, message in batch:
				loop.run_until_complete(layer.group_send(group, message))

		return group_send

	def _log_failed(self, groups: list[str], error: Exception) -> None:
		self.logger.warning(
			"could not publish live events to %s: %s",
			", ".join(groups),
			error,
			exc_info=error,
			extra={"groups": groups},
		)

	def _log_dropped(self, count: int) -> None:
		self.logger.warning(
			"dropped %s live-event message(s): the channel layer is not keeping up",
			count,
			extra={"dropped": count},
		)


def _redis_publisher(layer: Any) -> Callable[[list[tuple[str, dict[str, Any]]]], None] | None:
	"""A batch publisher on a plain Redis connection for the pub/sub layer on one server, else None."""
	from channels.layers import channel_layers
	from channels_redis.pubsub import RedisPubSubChannelLayer

	if not isinstance(layer, RedisPubSubChannelLayer):
		return None
	config = channel_layers.configs[DEFAULT_CHANNEL_LAYER].get("CONFIG", {})
	hosts = config.get("hosts") or []
	if len(hosts) != 1 or not isinstance(hosts[0], dict) or "address" not in hosts[0]:
		return None  # several shards, Sentinel or a bare URL: left to the layer
	options = {"socket_timeout": 5.0, **hosts[0]}  # a server that stops answering is given up on
	client = redis.Redis.from_url(options.pop("address"), **options)
	group_channel = config.get("prefix", "asgi") + "__group__{}"  # RedisPubSubLoopLayer's naming

	def publish(batch: list[tuple[str, dict[str, Any]]]) -> None:
		pipe = client.pipeline(transaction=False)
		for group, message in batch:
			pipe.publish(group_channel.format(group), layer.serialize(message))
		pipe.execute()

	return publish


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
