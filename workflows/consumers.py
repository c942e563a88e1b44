"""WebSocket consumers of the workflows app."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import struct
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from workflows.engine.effects import run_group, tenant_group

__all__ = [
	"CursorError",
	"RunEventsConsumer",
	"TenantCursor",
	"TenantEventsConsumer",
	"decode_cursor",
	"tenant_group",
]


class LiveConsumer(AsyncJsonWebsocketConsumer):
	"""A consumer that handles each message on the event loop, without a hop to a thread first.

	Channels' ``dispatch`` runs ``close_old_connections`` through ``sync_to_async`` before every
	message, and thread-sensitive calls share one thread per process: with hundreds of clients
	every live event queued that many hops behind each other (and behind every database read
	of the process). These consumers touch the database only through
	``database_sync_to_async``, which closes stale connections itself, in its thread.
	"""

	# Events in one frame at most, in batch mode (a replay is sent in frames of this many).
	BATCH_LIMIT = 500
	# Event texts waiting for their frame in batch mode; None sends each at once.
	batch: list[str] | None = None

	async def dispatch(self, message: dict[str, Any]) -> None:
		await getattr(self, get_handler_name(message))(message)

	def _batch_mode(self) -> bool:
		"""``?batch=1``: events go out together, one frame per message published (see docs/websocket.md).

		Raises :class:`ValueError` with what to send instead for a value that is not a switch.
		"""
		from urllib.parse import parse_qs

		values = parse_qs(self.scope.get("query_string", b"").decode("latin-1")).get("batch")
		value = values[0].lower() if values else "0"
		if value not in _SWITCH:
			raise ValueError(f"batch={values[0] if values else ''} is not a switch: pass batch=1 or batch=0.")
		return _SWITCH[value]

	async def _refuse_query(self, detail: str) -> None:
		"""Accept, say what is wrong with the URL's query, and close with 4400."""
		await self.accept(subprotocol=self._subprotocol())
		await self.send_json({"type": "error", "detail": detail})
		await self.close(code=4400)

	def _subprotocol(self) -> str | None:
		return "apg.v1" if "apg.v1" in self.scope.get("subprotocols", []) else None

	async def _hold(self, event: dict[str, Any]) -> bool:
		"""Batch mode: keep ``event`` for the next frame (sent at once when full); False when not batching."""
		if self.batch is None:
			return False
		self.batch.append(_event_json(event))
		if len(self.batch) >= self.BATCH_LIMIT:
			await self._send_batch()
		return True

	async def _send_batch(self) -> None:
		"""Batch mode: send the events held as one frame."""
		if self.batch:
			events, self.batch = self.batch, []
			await self.send(
				text_data=f'{{"type": "events", "events": [{", ".join(events)}]{self._batch_tail()}}}'
			)

	def _batch_tail(self) -> str:
		"""What a batch frame carries after its events (JSON members, each with a leading comma)."""
		return ""


class TenantEventsConsumer(LiveConsumer):
	"""``/ws/tenant/?cursor=C``: the run events of the member's tenant, live and resumable.

	RunEvents are numbered per run (``seq``), not per tenant, and numbering them per tenant
	would put a tenant-wide lock on every transition. Their uuid7 ids order them by creation
	time, but transactions commit out of that order, so "every id above the last one seen"
	would miss an event created before it and committed after. The stream therefore keeps,
	per connection, the last ``seq`` it sent of each run (so it sends each event once and a
	run's events in order, filling a gap from the database when a live message overtakes an
	earlier one or was lost) and gives the client, with every event, a cursor:

	a *horizon*, a time such that every event created at or before it was sent (or precedes the
	stream), kept ``WINDOW`` seconds behind the consumer's clock; and the last ``seq`` sent of
	every run whose last event sent may be newer than the horizon.

	Resuming with a cursor replays the tenant's events created after the horizon, minus what
	the cursor says the client holds, then goes live (joined before the replay, like
	:class:`RunEventsConsumer`). The guarantee holds while an event reaches this consumer
	within ``WINDOW`` seconds of being created (commit, publish and delivery) and clocks agree
	within ``SKEW``; the cost is a cursor that grows with the runs active in the last
	``WINDOW`` seconds (27 characters each). A cursor older than ``MAX_RESUME_AGE`` or more
	than ``REPLAY_LIMIT`` events behind gets a ``reset`` (reload over REST) instead of a replay.
	See docs/websocket.md.
	"""

	logger = logging.getLogger("apg.ws")
	WINDOW = 10.0
	SKEW = 1.0
	MAX_RESUME_AGE = 3600.0
	REPLAY_LIMIT = 10_000
	MAX_TRACKED_RUNS = 10_000

	async def connect(self) -> None:
		user = self.scope.get("user")
		tenant = self.scope.get("tenant")
		if self.scope.get("auth_failed") or user is None or not user.is_authenticated or tenant is None:
			self._log_refused()
			await self.close(code=4401)
			return
		self.user: Any = user
		self.tenant = tenant
		# run -> last seq sent (the dedup and gap map), and run -> (bound, cursor entry) for the
		# runs whose last event sent may be newer than the horizon (bound: latest creation time).
		self.sent: OrderedDict[str, int] = OrderedDict()
		self.window: OrderedDict[str, tuple[int, bytes]] = OrderedDict()
		self.run_ids: dict[str, bytes] = {}
		try:
			self.batch = [] if self._batch_mode() else None
			cursor = _cursor_param(self.scope.get("query_string", b""))
		except ValueError as exc:  # CursorError included
			await self._refuse_query(str(exc))
			return
		now = _now_ms()
		reset = cursor is not None and cursor.horizon < now - int(self.MAX_RESUME_AGE * 1000)
		self.floor = now if cursor is None or reset else min(cursor.horizon, now)
		if cursor is not None and not reset:
			bound = now + int(self.SKEW * 1000)
			for run, seq in cursor.runs:
				self.sent[run] = seq
				self.window[run] = (bound, self._entry(run, seq))
		self.group = tenant_group(tenant.pk)
		await self.channel_layer.group_add(self.group, self.channel_name)
		# Accepted before the replay is read, so the handshake costs no more than a live-only
		# stream; the read checks the role, and a member who left in between is closed with 4403.
		await self.accept(subprotocol=self._subprotocol())
		backlog = await self._replay(self.floor)
		if backlog is None:
			self._log_refused()
			await self.close(code=4403)
			return
		if len(backlog) > self.REPLAY_LIMIT:
			reset, backlog = True, []
		await self.send_json({"type": "hello", "tenant": tenant.slug, "user": user.get_username()})
		if reset:
			self._restart(now)
			await self.send_json({"type": "reset", "detail": RESET_DETAIL})
		for event, created in _per_run_order(backlog):
			await self._deliver(event, created, fill_unknown=False)
		await self._send_batch()
		self._log_connected(resumed=cursor is not None and not reset, replayed=len(backlog))
		await self.send_json({"type": "caught_up", "cursor": self._cursor()})

	async def disconnect(self, code: int) -> None:
		group = getattr(self, "group", None)
		if group is not None:
			await self.channel_layer.group_discard(group, self.channel_name)

	async def receive_json(self, content: Any, **kwargs: Any) -> None:
		if isinstance(content, dict) and content.get("type") == "ping":
			await self.send_json({"type": "pong"})
		else:
			await self.send_json({"type": "error", "detail": 'Unknown message; send {"type": "ping"}.'})

	async def tenant_event(self, message: dict[str, Any]) -> None:
		"""Forward one published event."""
		await self.tenant_events({"events": [message["event"]]})

	async def tenant_events(self, message: dict[str, Any]) -> None:
		"""Forward a transition's events (published together) one by one, in order.

		A notice that is not a run event (no ``seq``: an approval waiting for a decision)
		passes as it is.
		"""
		bound = self._live_bound()
		for event in message["events"]:
			if "run" in event and "seq" in event:
				await self._deliver(event, bound, fill_unknown=True)
			elif not await self._hold(event):
				await self.send(text_data=f'{{"type": "event", "event": {_event_json(event)}}}')
		await self._send_batch()

	# -- delivery ----------------------------------------------------------------------------

	async def _deliver(self, event: dict[str, Any], created: int, *, fill_unknown: bool) -> None:
		"""Send ``event`` unless already sent, after any of its run's events it overtook.

		``created`` is the latest time the event can have been created (ms). ``fill_unknown``:
		a run this connection has not sent anything of gets its events since the horizon first
		(a live message can overtake an earlier one of the same run from another worker).
		"""
		run, seq = str(event["run"]), int(event["seq"])
		last = self.sent.get(run)
		if last is not None and seq <= last:
			return
		missing: list[tuple[dict[str, Any], int]] = []
		if last is not None and seq > last + 1:
			missing = await self._between(run, last, seq, None)
		elif last is None and seq > 1 and fill_unknown:
			missing = await self._between(run, 0, seq, self._horizon())
		for earlier, earlier_created in missing:
			await self._send_event(earlier, earlier_created)
		await self._send_event(event, created)

	async def _send_event(self, event: dict[str, Any], created: int) -> None:
		run, seq = str(event["run"]), int(event["seq"])
		self.sent[run] = seq
		self.sent.move_to_end(run)
		if len(self.sent) > self.MAX_TRACKED_RUNS:
			# A forgotten run is treated as unknown: its next event fills from the horizon, so
			# only a run with nothing sent after the horizon (none in the window) may go.
			self._prune(self._horizon())
			if next(iter(self.sent)) not in self.window:
				forgotten, _ = self.sent.popitem(last=False)
				self.run_ids.pop(forgotten, None)
		self.window[run] = (created, self._entry(run, seq))
		self.window.move_to_end(run)
		if await self._hold(event):
			return
		# The cursor is URL-safe base64: nothing in it needs escaping in a JSON string.
		await self.send(
			text_data=f'{{"type": "event", "event": {_event_json(event)}, "cursor": "{self._cursor()}"}}'
		)

	def _batch_tail(self) -> str:
		# A batch frame carries the cursor after its last event (URL-safe base64: no escaping).
		return f', "cursor": "{self._cursor()}"'

	def _horizon(self) -> int:
		return max(self.floor, _now_ms() - int(self.WINDOW * 1000))

	def _entry(self, run: str, seq: int) -> bytes:
		# A run's id is parsed once while it is tracked: this runs for every event sent.
		raw = self.run_ids.get(run)
		if raw is None:
			raw = self.run_ids[run] = UUID(run).bytes
		return raw + _ENTRY_SEQ.pack(seq)

	def _live_bound(self) -> int:
		# A live event was created before it arrived (up to a clock difference).
		return _now_ms() + int(self.SKEW * 1000)

	def _cursor(self) -> str:
		horizon = self._horizon()
		self._prune(horizon)
		return _encode_cursor(horizon, self.window.values())

	def _prune(self, horizon: int) -> None:
		# Runs whose last event sent is older than the horizon need no entry: everything of
		# theirs created after it is unsent. The window is in update order, so this is lazy
		# (an entry kept too long only makes the cursor longer).
		while self.window and next(iter(self.window.values()))[0] <= horizon:
			self.window.popitem(last=False)

	def _restart(self, now: int) -> None:
		self.floor = now
		self.sent.clear()
		self.window.clear()
		self.run_ids.clear()

	# -- reads -------------------------------------------------------------------------------

	@database_sync_to_async
	def _replay(self, horizon: int) -> list[tuple[dict[str, Any], int]] | None:
		"""Events created after ``horizon`` (one more than the limit, to tell overflow); None: not a member."""
		from workflows.errors import NotFound, PermissionDenied
		from workflows.selectors.runs import tenant_events_after

		try:
			events = tenant_events_after(
				actor=self.user, tenant=self.tenant, after=_id_floor(horizon), limit=self.REPLAY_LIMIT + 1
			)
			return [(_payload(e), _created_ms(e.pk)) for e in events]
		except (NotFound, PermissionDenied):
			return None

	@database_sync_to_async
	def _between(
		self, run: str, after: int, before: int, horizon: int | None
	) -> list[tuple[dict[str, Any], int]]:
		from workflows.selectors.runs import run_events_between

		events = run_events_between(
			tenant=self.tenant,
			run_id=run,
			after=after,
			before=before,
			created_after=None if horizon is None else _id_floor(horizon),
		)
		return [(_payload(e), _created_ms(e.pk)) for e in events]

	# -- logging -----------------------------------------------------------------------------

	def _log_refused(self) -> None:
		self.logger.info("websocket refused", extra={"path": self.scope.get("path")})

	def _log_connected(self, *, resumed: bool, replayed: int) -> None:
		self.logger.info(
			"tenant stream of %s connected (resumed %s, %s events replayed)",
			self.tenant.slug,
			resumed,
			replayed,
			extra={"tenant_id": str(self.tenant.pk), "replayed": replayed},
		)


RESET_DETAIL = (
	"The cursor is too old or too far behind to replay (more than an hour, or more than 10000 events): "
	"reload what you show over the REST API (GET /api/v1/runs/); this stream carries on from now."
)


class CursorError(ValueError):
	"""A ``cursor`` query parameter this server did not issue."""


@dataclass(frozen=True)
class TenantCursor:
	"""A decoded tenant-stream cursor: the horizon (ms) and the last seq sent of recent runs."""

	horizon: int
	runs: list[tuple[str, int]]


_CURSOR_VERSION = 1
_HEAD = struct.Struct(">BQ")
_ENTRY_SEQ = struct.Struct(">I")
_ENTRY_SIZE = 16 + _ENTRY_SEQ.size


def _encode_cursor(horizon: int, entries: Iterable[tuple[int, bytes]]) -> str:
	raw = _HEAD.pack(_CURSOR_VERSION, horizon) + b"".join([entry for _, entry in entries])
	return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(value: str) -> TenantCursor:
	"""Parse a cursor this consumer issued; :class:`CursorError` says what is wrong with another."""
	try:
		raw = base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_", validate=True)
	except (ValueError, binascii.Error):
		raise CursorError(_BAD_CURSOR) from None
	if len(raw) < _HEAD.size or (len(raw) - _HEAD.size) % _ENTRY_SIZE or raw[0] != _CURSOR_VERSION:
		raise CursorError(_BAD_CURSOR)
	_, horizon = _HEAD.unpack_from(raw)
	runs = []
	for offset in range(_HEAD.size, len(raw), _ENTRY_SIZE):
		(seq,) = _ENTRY_SEQ.unpack_from(raw, offset + 16)
		runs.append((str(UUID(bytes=raw[offset : offset + 16])), seq))
	return TenantCursor(horizon=horizon, runs=runs)


_BAD_CURSOR = (
	"The cursor parameter is not a cursor this stream issued: pass the `cursor` of the last "
	"message you received unchanged, or connect without it to start from now."
)


def _cursor_param(query_string: bytes) -> TenantCursor | None:
	from urllib.parse import parse_qs

	values = parse_qs(query_string.decode("latin-1")).get("cursor")
	return decode_cursor(values[0]) if values and values[0] else None


def _now_ms() -> int:
	return int(time.time() * 1000)


def _created_ms(event_id: UUID) -> int:
	"""The creation time (ms) in a uuid7's first 48 bits."""
	return event_id.int >> 80


def _id_floor(horizon: int) -> UUID:
	"""The largest id below every uuid7 created after ``horizon`` (ms)."""
	return UUID(int=((horizon + 1) << 80) - 1)


def _payload(event: Any) -> dict[str, Any]:
	return {
		"run": str(event.run_id),
		"seq": event.seq,
		"type": event.type,
		"step": event.step_key,
		"data": event.data,
	}


def _event_json(event: dict[str, Any]) -> str:
	"""The event as JSON: encoded once by the publisher for every connection (``json``), else here."""
	text = event.get("json")
	return text if text is not None else json.dumps(event)


def _per_run_order(events: list[tuple[dict[str, Any], int]]) -> list[tuple[dict[str, Any], int]]:
	"""Events in id order, but each run's in seq order (ids of one run can disagree by clock skew)."""
	slots: dict[str, list[int]] = {}
	for index, (event, _) in enumerate(events):
		slots.setdefault(event["run"], []).append(index)
	ordered = list(events)
	for indexes in slots.values():
		by_seq = sorted((events[i] for i in indexes), key=lambda pair: pair[0]["seq"])
		for index, pair in zip(indexes, by_seq, strict=True):
			ordered[index] = pair
	return ordered


class RunEventsConsumer(LiveConsumer):
	"""``/ws/runs/<id>/?after=N``: the run's events after sequence N, then live, in order, none missed.

	The consumer joins the run's group *before* reading the backlog, and drops live events
	it already sent from the backlog, so an event published in between is neither lost nor
	sent twice.
	"""

	logger = logging.getLogger("apg.ws")

	async def connect(self) -> None:
		user = self.scope.get("user")
		tenant = self.scope.get("tenant")
		run_id = self.scope.get("url_route", {}).get("kwargs", {}).get("run_id")
		if self.scope.get("auth_failed") or user is None or not user.is_authenticated or tenant is None:
			await self.close(code=4401)
			return
		run = await self._run(user, tenant, run_id)
		if run is None:
			await self.close(code=4404)
			return
		self.run = run
		try:
			self.batch = [] if self._batch_mode() else None
		except ValueError as exc:
			await self._refuse_query(str(exc))
			return
		self.last_seq = _after(self.scope.get("query_string", b""))
		self.group = run_group(run.pk)
		await self.channel_layer.group_add(self.group, self.channel_name)
		await self.accept(subprotocol=self._subprotocol())
		for event in await self._backlog(self.last_seq):
			await self._send_event(event)
		await self._send_batch()
		await self.send_json({"type": "caught_up", "seq": self.last_seq, "status": await self._status()})

	async def disconnect(self, code: int) -> None:
		group = getattr(self, "group", None)
		if group is not None:
			await self.channel_layer.group_discard(group, self.channel_name)

	async def run_events(self, message: dict[str, Any]) -> None:
		"""Live events of a transition; those already sent are skipped, those skipped over are read.

		The channel layer delivers at most once (a message published while a server reconnects
		to Redis is lost) and two workers' messages can overtake each other, so an event that
		skips ahead of the last one sent first gets the ones in between from the database.
		"""
		for event in message["events"]:
			seq = event["seq"]
			if seq <= self.last_seq:
				continue
			if seq > self.last_seq + 1:
				for missing in await self._between(self.last_seq, seq):
					await self._send_event(missing)
			await self._send_event(event)
		await self._send_batch()

	async def _send_event(self, event: dict[str, Any]) -> None:
		self.last_seq = max(self.last_seq, event["seq"])
		if not await self._hold(event):
			await self.send(text_data=f'{{"type": "event", "event": {_event_json(event)}}}')

	@database_sync_to_async
	def _run(self, user: Any, tenant: Any, run_id: Any) -> Any:
		from workflows.errors import NotFound, PermissionDenied
		from workflows.selectors.runs import run_get

		try:
			return run_get(actor=user, tenant=tenant, run_id=run_id)
		except (NotFound, PermissionDenied):
			return None

	@database_sync_to_async
	def _backlog(self, after: int) -> list[dict[str, Any]]:
		from workflows.selectors.runs import run_events_after

		return [_payload(e) for e in run_events_after(actor=None, run=self.run, after=after, limit=10_000)]

	@database_sync_to_async
	def _between(self, after: int, before: int) -> list[dict[str, Any]]:
		from workflows.selectors.runs import run_events_between

		return [
			_payload(e)
			for e in run_events_between(
				tenant=self.run.tenant, run_id=self.run.pk, after=after, before=before
			)
		]

	@database_sync_to_async
	def _status(self) -> str:
		self.run.refresh_from_db(fields=["status"])
		return self.run.status


_SWITCH = {"1": True, "true": True, "0": False, "false": False}


def _after(query_string: bytes) -> int:
	from urllib.parse import parse_qs

	values = parse_qs(query_string.decode("latin-1")).get("after", ["0"])
	try:
		return max(0, int(values[0]))
	except ValueError:
		return 0
