"""``/ws/tenant/``: a tenant's run events, in order per run, resumable without loss or duplicates.

Runs are started and cancelled through the services (their events are committed, then
published to the tenant's group). Where a test needs what a slow worker does - an event
created before another and committed after it, or a live message that overtakes an earlier
one - :func:`commit_event` writes the row as a transition does and the test publishes it.
"""

from __future__ import annotations

import base64
import random
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.db import connections, transaction

from tests.ws.conftest import owner_of, start, ws_app
from workflows.consumers import CursorError, TenantEventsConsumer, decode_cursor, tenant_group
from workflows.models import Run, RunEvent, Tenant, User
from workflows.services.runs import run_cancel

pytestmark = pytest.mark.django_db(transaction=True)

Stream = Callable[..., Awaitable[WebsocketCommunicator]]
QUIET = 0.5  # seconds without a message: the stream has nothing more to send


# --- helpers -------------------------------------------------------------------------------


def uuid7_at(ms: int) -> UUID:
	"""A uuid7 created at ``ms`` (what a worker's transaction generated then)."""
	return UUID(
		int=(ms << 80) | (0x7 << 76) | (random.getrandbits(12) << 64) | (0b10 << 62) | random.getrandbits(62)
	)


def now_ms() -> int:
	return int(time.time() * 1000)


def commit_event(run: Run, *, created_ms: int | None = None) -> dict[str, Any]:
	"""Append the run's next event as a transition does (row lock, next seq); its live payload."""
	with transaction.atomic():
		locked = Run.objects._unfiltered().select_for_update().get(pk=run.pk)
		seq = locked.last_seq + 1
		RunEvent.objects._unfiltered().create(
			id=uuid7_at(created_ms if created_ms is not None else now_ms()),
			tenant_id=run.tenant_id,
			run_id=run.pk,
			seq=seq,
			type="note",
			step_key="",
			data={"n": seq},
		)
		Run.objects._unfiltered().filter(pk=run.pk).update(last_seq=seq)
	return {"run": str(run.pk), "seq": seq, "type": "note", "step": "", "data": {"n": seq}}


async def publish(tenant: Tenant, *events: dict[str, Any], kind: str = "tenant.events") -> None:
	layer = get_channel_layer()
	assert layer is not None
	if kind == "tenant.event":
		for event in events:
			await layer.group_send(tenant_group(tenant.pk), {"type": kind, "event": event})
	else:
		await layer.group_send(tenant_group(tenant.pk), {"type": kind, "events": list(events)})


async def until_caught_up(communicator: WebsocketCommunicator) -> tuple[list[dict[str, Any]], dict[str, Any]]:
	"""Messages up to ``caught_up`` (hello skipped): (the others, caught_up)."""
	received: list[dict[str, Any]] = []
	while True:
		message = await communicator.receive_json_from(timeout=10)
		if message["type"] == "caught_up":
			return received, message
		if message["type"] != "hello":
			received.append(message)


async def drain(communicator: WebsocketCommunicator) -> list[dict[str, Any]]:
	"""Every message until the stream stays quiet for ``QUIET`` seconds."""
	received = []
	while not await communicator.receive_nothing(timeout=QUIET):
		received.append(await communicator.receive_json_from(timeout=10))
	return received


def keys(messages: list[dict[str, Any]]) -> list[tuple[str, int]]:
	return [(m["event"]["run"], m["event"]["seq"]) for m in messages if m["type"] == "event"]


def history(run: Run) -> list[tuple[str, int]]:
	return [
		(str(run.pk), seq)
		for seq in RunEvent.objects.for_tenant(run.tenant).filter(run=run).values_list("seq", flat=True)
	]


async def close(communicator: WebsocketCommunicator) -> None:
	await communicator.disconnect()
	await sync_to_async(connections.close_all)()


def cancel(run: Run) -> Run:
	return run_cancel(actor=owner_of(run.tenant), run=run)


# --- order ---------------------------------------------------------------------------------


async def test_events_arrive_in_order_per_run_each_once(setup: Any, tenant_stream: Stream) -> None:
	tenant, workflow, raw = await setup()
	stream = await tenant_stream(raw)
	await until_caught_up(stream)

	first = await sync_to_async(start)(workflow)
	second = await sync_to_async(start)(workflow)
	await sync_to_async(cancel)(first)
	third = await sync_to_async(start)(workflow)
	await sync_to_async(cancel)(second)
	received = await drain(stream)
	await close(stream)

	got = keys(received)
	for run in (first, second, third):
		assert [k for k in got if k[0] == str(run.pk)] == await sync_to_async(history)(run)
	assert len(got) == len(set(got)) == 4 + 6 + 6
	assert all(m["cursor"] for m in received)


async def test_a_live_message_that_overtakes_an_earlier_one_is_put_back_in_order(
	setup: Any, tenant_stream: Stream
) -> None:
	tenant, workflow, raw = await setup()
	before = await sync_to_async(start)(workflow)  # seq 1-4, before the client connected
	stream = await tenant_stream(raw)
	await until_caught_up(stream)

	# Two workers commit seq 5 then 6; the message of 6 arrives first (and 5's after it).
	five = await sync_to_async(commit_event)(before)
	six = await sync_to_async(commit_event)(before)
	await publish(tenant, six)
	await publish(tenant, five)
	# Then a gap inside what the client already follows: 8 overtakes 7 (sent one at a time).
	seven = await sync_to_async(commit_event)(before)
	eight = await sync_to_async(commit_event)(before)
	await publish(tenant, eight, kind="tenant.event")
	await publish(tenant, seven, kind="tenant.event")
	received = await drain(stream)
	await close(stream)

	assert keys(received) == [(str(before.pk), seq) for seq in (5, 6, 7, 8)]
	assert [m["event"]["data"] for m in received] == [{"n": 5}, {"n": 6}, {"n": 7}, {"n": 8}]


# --- resume --------------------------------------------------------------------------------


@pytest.mark.parametrize("during", ["before_replay_query", "after_replay_query"])
async def test_resuming_misses_nothing_and_duplicates_nothing(
	setup: Any, tenant_stream: Stream, monkeypatch: pytest.MonkeyPatch, during: str
) -> None:
	tenant, workflow, raw = await setup()
	stream = await tenant_stream(raw)
	await until_caught_up(stream)
	slow = await sync_to_async(start)(workflow)
	await sync_to_async(time.sleep)(0.01)
	late_created = now_ms()  # a worker's transaction on `slow` begins here and commits much later
	await sync_to_async(time.sleep)(0.01)
	seen = await sync_to_async(start)(workflow)
	before = await drain(stream)
	cursor = before[-1]["cursor"]
	await close(stream)

	# While the client is away: the slow transaction commits (created before the last event
	# the client saw), another run starts, and a run it follows is cancelled.
	late = await sync_to_async(commit_event)(slow, created_ms=late_created)
	await publish(tenant, late)
	other = await sync_to_async(start)(workflow)
	await sync_to_async(cancel)(seen)
	# And one more transition commits while it reconnects: after it joined the live group,
	# before or after the server read what it missed.
	original = TenantEventsConsumer.__dict__["_replay"]  # the unbound database_sync_to_async wrapper

	async def replay_with_a_commit(self: TenantEventsConsumer, horizon: int) -> Any:
		if during == "before_replay_query":
			await sync_to_async(cancel)(other)
		result = await original(self, horizon)
		if during == "after_replay_query":
			await sync_to_async(cancel)(other)
		return result

	monkeypatch.setattr(TenantEventsConsumer, "_replay", replay_with_a_commit)
	resumed = await tenant_stream(raw, cursor)
	replayed, caught_up = await until_caught_up(resumed)
	live = await drain(resumed)
	monkeypatch.undo()
	# Live again: a transition after the resume arrives once.
	await sync_to_async(cancel)(slow)
	after = await drain(resumed)
	await close(resumed)

	got = keys(replayed) + keys(live) + keys(after)
	everything = [k for run in (slow, seen, other) for k in await sync_to_async(history)(run)]
	assert sorted(keys(before) + got) == sorted(everything)
	assert len(got) == len(set(got))
	assert set(keys(before)).isdisjoint(got)
	assert (str(slow.pk), late["seq"]) in keys(replayed)
	assert caught_up["cursor"]
	for run in (slow, seen, other):
		seqs = [seq for r, seq in got if r == str(run.pk)]
		assert seqs == sorted(seqs)


async def test_a_cursor_from_the_last_message_resumes_with_nothing_when_nothing_happened(
	setup: Any, tenant_stream: Stream
) -> None:
	tenant, workflow, raw = await setup()
	stream = await tenant_stream(raw)
	_, caught_up = await until_caught_up(stream)
	await close(stream)

	resumed = await tenant_stream(raw, caught_up["cursor"])
	replayed, _ = await until_caught_up(resumed)
	await sync_to_async(start)(workflow)
	live = await drain(resumed)
	await close(resumed)

	assert replayed == []
	assert [seq for _, seq in keys(live)] == [1, 2, 3, 4]


async def test_a_run_quiet_for_longer_than_the_window_leaves_the_cursor_and_still_streams(
	setup: Any, tenant_stream: Stream, monkeypatch: pytest.MonkeyPatch
) -> None:
	monkeypatch.setattr(TenantEventsConsumer, "WINDOW", 0.05)
	monkeypatch.setattr(TenantEventsConsumer, "SKEW", 0.0)
	tenant, workflow, raw = await setup()
	stream = await tenant_stream(raw)
	await until_caught_up(stream)
	quiet = await sync_to_async(start)(workflow)
	quiet_first = await drain(stream)
	await sync_to_async(time.sleep)(0.1)

	busy = await sync_to_async(start)(workflow)
	busy_messages = await drain(stream)
	await sync_to_async(cancel)(quiet)
	quiet_later = await drain(stream)
	await close(stream)

	assert [r for r, _ in decode_cursor(quiet_first[-1]["cursor"]).runs] == [str(quiet.pk)]
	assert [r for r, _ in decode_cursor(busy_messages[-1]["cursor"]).runs] == [str(busy.pk)]
	assert keys(quiet_later) == [(str(quiet.pk), 5), (str(quiet.pk), 6)]
	assert decode_cursor(busy_messages[0]["cursor"]).horizon > decode_cursor(quiet_first[0]["cursor"]).horizon


async def test_a_run_the_stream_stopped_tracking_is_filled_in_from_the_horizon(
	setup: Any, tenant_stream: Stream, monkeypatch: pytest.MonkeyPatch
) -> None:
	monkeypatch.setattr(TenantEventsConsumer, "MAX_TRACKED_RUNS", 1)
	# A window long enough for a loaded machine to deliver `six` within it after `five` is
	# created (with 50 ms, `five` was sometimes already behind the horizon when filled in).
	monkeypatch.setattr(TenantEventsConsumer, "WINDOW", 1.0)
	monkeypatch.setattr(TenantEventsConsumer, "SKEW", 0.0)
	tenant, workflow, raw = await setup()
	stream = await tenant_stream(raw)
	await until_caught_up(stream)
	forgotten = await sync_to_async(start)(workflow)
	await drain(stream)
	await sync_to_async(time.sleep)(1.2)  # its events are now older than the horizon
	await sync_to_async(start)(workflow)  # the one run tracked now
	await drain(stream)

	five = await sync_to_async(commit_event)(forgotten)
	six = await sync_to_async(commit_event)(forgotten)
	await publish(tenant, six)  # overtakes five, whose message never comes
	received = await drain(stream)
	await close(stream)

	assert five["seq"] == 5
	assert keys(received) == [(str(forgotten.pk), 5), (str(forgotten.pk), 6)]


async def test_the_tracking_limit_never_forgets_a_run_with_recent_events(
	setup: Any, tenant_stream: Stream, monkeypatch: pytest.MonkeyPatch
) -> None:
	monkeypatch.setattr(TenantEventsConsumer, "MAX_TRACKED_RUNS", 1)
	tenant, workflow, raw = await setup()
	stream = await tenant_stream(raw)
	await until_caught_up(stream)
	first = await sync_to_async(start)(workflow)
	second = await sync_to_async(start)(workflow)
	await drain(stream)

	await sync_to_async(cancel)(first)
	received = await drain(stream)
	await close(stream)

	assert keys(received) == [(str(first.pk), 5), (str(first.pk), 6)]
	assert {r for r, _ in decode_cursor(received[-1]["cursor"]).runs} == {str(first.pk), str(second.pk)}


# --- limits of a resume ----------------------------------------------------------------------


def _cursor(horizon: int, runs: list[tuple[str, int]] | None = None, version: int = 1) -> str:
	"""A cursor as the server writes it (version, horizon in ms, then run id and seq pairs)."""
	raw = struct.pack(">BQ", version, horizon)
	raw += b"".join(UUID(run).bytes + struct.pack(">I", seq) for run, seq in runs or [])
	return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


_TRUNCATED = _cursor(1, [("01a220a3-a171-7221-a448-887660da309d", 3)])[:-3]


async def test_a_cursor_older_than_the_replay_limit_gets_a_reset_then_live_events(
	setup: Any, tenant_stream: Stream
) -> None:
	tenant, workflow, raw = await setup()
	two_hours_ago = now_ms() - 2 * 3600 * 1000

	stream = await tenant_stream(raw, _cursor(two_hours_ago))
	before, caught_up = await until_caught_up(stream)
	await sync_to_async(start)(workflow)
	live = await drain(stream)
	await close(stream)

	assert [m["type"] for m in before] == ["reset"]
	assert "GET /api/v1/runs/" in before[0]["detail"]
	assert decode_cursor(caught_up["cursor"]).horizon > two_hours_ago
	assert len(keys(live)) == 4


async def test_more_events_missed_than_the_replay_limit_gets_a_reset_not_a_flood(
	setup: Any, tenant_stream: Stream, monkeypatch: pytest.MonkeyPatch
) -> None:
	monkeypatch.setattr(TenantEventsConsumer, "REPLAY_LIMIT", 3)
	tenant, workflow, raw = await setup()
	stream = await tenant_stream(raw)
	_, caught_up = await until_caught_up(stream)
	await close(stream)
	await sync_to_async(start)(workflow)  # 4 events while away

	resumed = await tenant_stream(raw, caught_up["cursor"])
	before, _ = await until_caught_up(resumed)
	await close(resumed)

	assert [m["type"] for m in before] == ["reset"]


@pytest.mark.parametrize(
	"cursor",
	["not a cursor!", "AQID", _cursor(1, version=2), _TRUNCATED],
	ids=["not-base64", "too-short", "unknown-version", "truncated-entry"],
)
async def test_a_cursor_this_server_did_not_issue_is_refused_with_what_to_do(setup: Any, cursor: str) -> None:
	_, _, raw = await setup()
	communicator = WebsocketCommunicator(
		ws_app(), f"/ws/tenant/?cursor={cursor}", headers=[(b"authorization", f"Bearer {raw}".encode())]
	)

	connected, _ = await communicator.connect(timeout=10)
	error = await communicator.receive_json_from(timeout=5)
	closed = await communicator.receive_output(timeout=5)
	await sync_to_async(connections.close_all)()

	assert connected
	assert error["type"] == "error"
	assert "cursor" in error["detail"]
	assert "connect without it" in error["detail"]
	assert closed == {"type": "websocket.close", "code": 4400}


def test_decode_cursor_round_trips_and_refuses_garbage() -> None:
	run = str(uuid7_at(now_ms()))

	cursor = decode_cursor(_cursor(1234, [(run, 7)]))

	assert (cursor.horizon, cursor.runs) == (1234, [(run, 7)])
	with pytest.raises(CursorError):
		decode_cursor("%%%")


# --- who may listen ------------------------------------------------------------------------------


async def test_another_tenants_member_gets_nothing_of_this_tenant(setup: Any, tenant_stream: Stream) -> None:
	tenant, workflow, _ = await setup()
	other, other_workflow, other_raw = await setup()
	live_stream = await tenant_stream(other_raw)
	await until_caught_up(live_stream)
	earlier = now_ms() - 1000

	mine = await sync_to_async(start)(workflow)
	await sync_to_async(cancel)(mine)
	theirs = await sync_to_async(start)(other_workflow)
	live = await drain(live_stream)
	await close(live_stream)
	# A resume from before all that replays only the member's own tenant.
	resumed = await tenant_stream(other_raw, _cursor(earlier, [(str(mine.pk), 1)]))
	replayed, _ = await until_caught_up(resumed)
	await close(resumed)

	assert keys(live) == await sync_to_async(history)(theirs)
	assert keys(replayed) == await sync_to_async(history)(theirs)


@pytest.mark.parametrize(
	"headers", [[], [(b"authorization", b"Bearer apg_forged")]], ids=["anonymous", "bad-token"]
)
async def test_anonymous_and_bad_token_clients_are_refused_at_connect(
	headers: list[tuple[bytes, bytes]],
) -> None:
	communicator = WebsocketCommunicator(ws_app(), "/ws/tenant/", headers=headers)

	connected, code = await communicator.connect(timeout=10)
	await sync_to_async(connections.close_all)()

	assert not connected
	assert code == 4401


async def test_a_user_who_is_not_a_member_is_closed_before_any_event(
	tenant_factory: Callable[..., Tenant], user_factory: Callable[..., User]
) -> None:
	# What the authentication middleware would hand over if the membership ended in between.
	tenant, stranger = await sync_to_async(lambda: (tenant_factory(), user_factory()))()

	async def app(scope: dict[str, Any], receive: Any, send: Any) -> Any:
		consumer: Any = TenantEventsConsumer.as_asgi()
		return await consumer(
			{**scope, "user": stranger, "tenant": tenant, "auth_failed": False}, receive, send
		)

	communicator = WebsocketCommunicator(app, "/ws/tenant/")

	connected, _ = await communicator.connect(timeout=10)
	closed = await communicator.receive_output(timeout=5)
	await sync_to_async(connections.close_all)()

	assert connected
	assert closed == {"type": "websocket.close", "code": 4403}
