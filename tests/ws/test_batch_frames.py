"""``?batch=1``: both streams send the events of one published message in one frame.

A dashboard following hundreds of runs receives a transition's events (a step finished, the
next one scheduled) together instead of one frame each; the tenant stream's frame carries the
cursor after its last event, so resuming works as with one event per frame.
"""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from tests.ws.conftest import connect, owner_of, start, ws_app
from tests.ws.test_tenant_stream import close, commit_event, drain, history, publish, until_caught_up
from workflows.models import Run
from workflows.services.runs import run_cancel

pytestmark = pytest.mark.django_db(transaction=True)


def batched(messages: list[dict[str, Any]]) -> list[tuple[str, int]]:
	"""(run, seq) of the events in ``events`` frames, in the order received."""
	assert all(m["type"] == "events" for m in messages), messages
	return [(e["run"], e["seq"]) for m in messages for e in m["events"]]


async def test_the_tenant_stream_sends_a_transitions_events_in_one_frame_with_the_cursor(setup: Any) -> None:
	tenant, workflow, raw = await setup()
	stream = await connect("/ws/tenant/?batch=1", raw)
	await until_caught_up(stream)

	run: Run = await sync_to_async(start)(workflow)  # one transition: 4 events, one message
	frames = await drain(stream)
	await close(stream)

	assert len(frames) == 1
	assert batched(frames) == await sync_to_async(history)(run)
	assert [e["type"] for e in frames[0]["events"]][0] == "run.started"
	assert frames[0]["cursor"]


async def test_resuming_a_batched_tenant_stream_replays_what_was_missed_in_frames(setup: Any) -> None:
	tenant, workflow, raw = await setup()
	stream = await connect("/ws/tenant/?batch=1", raw)
	await until_caught_up(stream)
	seen: Run = await sync_to_async(start)(workflow)
	cursor = (await drain(stream))[-1]["cursor"]
	await close(stream)

	other: Run = await sync_to_async(start)(workflow)  # while the client is away
	await sync_to_async(lambda: run_cancel(actor=owner_of(tenant), run=seen))()
	resumed = await connect(f"/ws/tenant/?batch=1&cursor={cursor}", raw)
	replayed, caught_up = await until_caught_up(resumed)
	await close(resumed)

	missed = await sync_to_async(history)(other) + (await sync_to_async(history)(seen))[4:]
	assert sorted(batched(replayed)) == sorted(missed)
	assert len(replayed) == 1  # what was missed, in one frame (up to BATCH_LIMIT events)
	assert caught_up["cursor"]


async def test_the_run_stream_sends_its_backlog_then_each_transition_in_one_frame(setup: Any) -> None:
	tenant, workflow, raw = await setup()
	run: Run = await sync_to_async(start)(workflow)
	stream = await connect(f"/ws/runs/{run.pk}/?batch=1", raw)
	backlog = await stream.receive_json_from(timeout=10)
	caught_up = await stream.receive_json_from(timeout=10)

	five = await sync_to_async(commit_event)(run)
	six = await sync_to_async(commit_event)(run)
	from channels.layers import get_channel_layer

	from workflows.engine.effects import run_group

	layer = get_channel_layer()
	assert layer is not None
	await layer.group_send(run_group(run.pk), {"type": "run.events", "events": [five, six]})
	live = await drain(stream)
	await close(stream)

	assert batched([backlog]) == [(str(run.pk), seq) for seq in (1, 2, 3, 4)]
	assert caught_up == {"type": "caught_up", "seq": 4, "status": "waiting"}
	assert batched(live) == [(str(run.pk), 5), (str(run.pk), 6)]
	assert len(live) == 1


async def test_a_batched_frame_fills_a_gap_from_the_database_first(setup: Any) -> None:
	tenant, workflow, raw = await setup()
	run: Run = await sync_to_async(start)(workflow)
	stream = await connect("/ws/tenant/?batch=1", raw)
	await until_caught_up(stream)

	five = await sync_to_async(commit_event)(run)
	six = await sync_to_async(commit_event)(run)
	await publish(tenant, six)  # 5's message is lost
	frames = await drain(stream)
	await close(stream)

	assert batched(frames) == [(str(run.pk), five["seq"]), (str(run.pk), six["seq"])]
	assert frames[0]["events"][0]["data"] == five["data"]
	assert len(frames) == 1


@pytest.mark.parametrize("path", ["/ws/tenant/?batch=maybe", "/ws/runs/{run}/?batch=yes"])
async def test_a_batch_value_that_is_not_a_switch_is_refused_with_what_to_send(setup: Any, path: str) -> None:
	tenant, workflow, raw = await setup()
	run: Run = await sync_to_async(start)(workflow)
	communicator = WebsocketCommunicator(
		ws_app(), path.format(run=run.pk), headers=[(b"authorization", f"Bearer {raw}".encode())]
	)
	connected, _ = await communicator.connect(timeout=10)
	assert connected
	message = await communicator.receive_json_from(timeout=10)
	closed = await communicator.receive_output(timeout=10)
	await close(communicator)

	assert message["type"] == "error"
	assert "pass batch=1 or batch=0" in message["detail"]
	assert closed == {"type": "websocket.close", "code": 4400}


async def test_batch_0_keeps_one_event_per_frame(setup: Any) -> None:
	tenant, workflow, raw = await setup()
	stream = await connect("/ws/tenant/?batch=0", raw)
	await until_caught_up(stream)
	run: Run = await sync_to_async(start)(workflow)
	frames = await drain(stream)
	await close(stream)

	assert [m["type"] for m in frames] == ["event"] * 4
	assert [(m["event"]["run"], m["event"]["seq"]) for m in frames] == await sync_to_async(history)(run)
