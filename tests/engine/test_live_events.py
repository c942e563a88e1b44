"""Live events: published from the engine's side without blocking it, in order, to run and tenant groups."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from typing import Any

import pytest
from channels.layers import get_channel_layer

from workflows.engine.effects import LivePublisher, _merged, publish_events, run_group, tenant_group


async def _receive_events(layer: Any, channel: str, count: int) -> list[dict[str, Any]]:
	got: list[dict[str, Any]] = []
	while len(got) < count:
		message = await asyncio.wait_for(layer.receive(channel), timeout=5)
		got.extend(message["events"])
	return got


@pytest.mark.usefixtures("redis_configured")
async def test_events_reach_the_run_and_tenant_groups_over_redis_in_order() -> None:
	layer = get_channel_layer()
	assert layer is not None
	run_id, tenant_id = str(uuid.uuid4()), str(uuid.uuid4())
	run_channel = await layer.new_channel()
	tenant_channel = await layer.new_channel()
	await layer.group_add(run_group(run_id), run_channel)
	await layer.group_add(tenant_group(tenant_id), tenant_channel)

	for seq in range(1, 31):
		publish_events(
			run_id=run_id, tenant_id=tenant_id, events=[(seq, "step.succeeded", f"root:s{seq}", {})]
		)

	by_run = await _receive_events(layer, run_channel, 30)
	by_tenant = await _receive_events(layer, tenant_channel, 30)
	assert [e["seq"] for e in by_run] == list(range(1, 31))
	assert [e["seq"] for e in by_tenant] == list(range(1, 31))
	assert json.loads(by_run[0]["json"]) == {
		"run": run_id,
		"seq": 1,
		"type": "step.succeeded",
		"step": "root:s1",
		"data": {},
	}
	assert by_tenant[0]["json"] == by_run[0]["json"]  # encoded once, for every client


@pytest.mark.usefixtures("redis_configured")
def test_a_flood_past_the_backlog_cap_drops_the_oldest_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
	publisher = LivePublisher(max_pending=5)
	# Hold the sender in its first delivery: messages pile up behind it.
	gate, holding = threading.Event(), threading.Event()
	delivered: list[int] = []
	real = publisher.deliverer

	def held(layer: Any) -> Any:
		deliver = real(layer)

		def deliver_after_gate(batch: list[tuple[str, dict[str, Any]]]) -> None:
			holding.set()
			gate.wait(5)
			delivered.extend(e["seq"] for _, m in batch for e in m["events"])
			deliver(batch)

		return deliver_after_gate

	publisher.deliverer = held  # type: ignore[method-assign]
	group = f"run.{uuid.uuid4()}"
	publisher.send(group, {"type": "run.events", "events": [{"seq": -1}]})
	assert holding.wait(5)
	for seq in range(12):
		publisher.send(group, {"type": "run.events", "events": [{"seq": seq}]})
	pending = [m["events"][0]["seq"] for _, m in publisher._pending]
	gate.set()

	assert pending == [7, 8, 9, 10, 11]
	assert publisher.flush(timeout=5)
	assert delivered == [-1, 7, 8, 9, 10, 11]
	assert "dropped 7 live-event message(s)" in caplog.text


def test_an_unreachable_redis_loses_live_events_with_a_warning_and_keeps_the_engine_going(
	settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
	from channels.layers import channel_layers

	from config.settings.base import redis_channel_layer

	settings.CHANNEL_LAYERS = {"default": redis_channel_layer("redis://127.0.0.1:1/0")}
	channel_layers.backends.clear()
	try:
		publisher = LivePublisher()
		publisher.send("run.gone", {"type": "run.events", "events": [{"seq": 1}]})
		assert publisher.flush(timeout=10)
	finally:
		channel_layers.backends.clear()

	assert "could not publish live events to run.gone" in caplog.text


@pytest.mark.usefixtures("redis_configured")
def test_a_layer_of_several_redis_servers_gets_its_own_group_send(settings: Any) -> None:
	from channels.layers import channel_layers

	from config.settings.base import redis_channel_layer

	layer_config = redis_channel_layer(settings.REDIS_URL)
	address = layer_config["CONFIG"]["hosts"][0]["address"]
	layer_config["CONFIG"]["hosts"] = [{"address": address}, {"address": address}]  # two shards
	settings.CHANNEL_LAYERS = {"default": layer_config}
	channel_layers.backends.clear()
	try:
		publisher = LivePublisher()
		layer = get_channel_layer()
		assert layer is not None
		assert publisher.deliverer(layer).__name__ == "group_send"
		group = f"run.{uuid.uuid4()}"

		async def receive_one() -> dict[str, Any]:
			channel = await layer.new_channel()
			await layer.group_add(group, channel)
			await asyncio.to_thread(publisher.send, group, {"type": "run.events", "events": [{"seq": 5}]})
			return await asyncio.wait_for(layer.receive(channel), timeout=5)

		from asgiref.sync import async_to_sync

		message = async_to_sync(receive_one)()
	finally:
		channel_layers.backends.clear()

	assert message == {"type": "run.events", "events": [{"seq": 5}]}


def test_consecutive_messages_of_a_group_are_sent_as_one() -> None:
	messages = [
		("run.a", {"type": "run.events", "events": [{"seq": 1}]}),
		("tenant.t", {"type": "tenant.events", "events": [{"seq": 1}]}),
		("run.a", {"type": "run.events", "events": [{"seq": 2}]}),
		("run.b", {"type": "run.events", "events": [{"seq": 1}]}),
	]

	merged = _merged(messages)

	assert merged == [
		("run.a", {"type": "run.events", "events": [{"seq": 1}, {"seq": 2}]}),
		("tenant.t", {"type": "tenant.events", "events": [{"seq": 1}]}),
		("run.b", {"type": "run.events", "events": [{"seq": 1}]}),
	]
	assert messages[0][1]["events"] == [{"seq": 1}]  # the inputs are not changed


def test_without_redis_events_go_through_the_in_memory_layer(settings: Any) -> None:
	from channels.layers import InMemoryChannelLayer, channel_layers

	settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
	channel_layers.backends.clear()
	try:
		layer = get_channel_layer()
		assert isinstance(layer, InMemoryChannelLayer)
		from asgiref.sync import async_to_sync

		channel = async_to_sync(layer.new_channel)()
		async_to_sync(layer.group_add)("run.mem", channel)
		LivePublisher().send("run.mem", {"type": "run.events", "events": [{"seq": 1}]})
		message = async_to_sync(layer.receive)(channel)
	finally:
		channel_layers.backends.clear()

	assert message == {"type": "run.events", "events": [{"seq": 1}]}


@pytest.mark.usefixtures("redis_configured")
def test_messages_published_soon_after_a_send_go_out_together_and_a_lone_one_at_once() -> None:
	publisher = LivePublisher(linger=0.5)
	batches: list[list[int]] = []
	sent_at: list[float] = []
	real = publisher.deliverer

	def recording(layer: Any) -> Any:
		deliver = real(layer)

		def deliver_and_record(batch: list[tuple[str, dict[str, Any]]]) -> None:
			sent_at.append(time.monotonic())
			batches.append([e["seq"] for _, m in batch for e in m["events"]])
			deliver(batch)

		return deliver_and_record

	publisher.deliverer = recording  # type: ignore[method-assign]
	group = f"run.{uuid.uuid4()}"
	publisher.send(group, {"type": "run.events", "events": [{"seq": 1}]})
	assert publisher.flush(timeout=5)
	for seq in (2, 3, 4):  # a burst, right after a send
		publisher.send(group, {"type": "run.events", "events": [{"seq": seq}]})
	assert publisher.flush(timeout=5)
	time.sleep(0.6)  # quiet for longer than the linger
	asked = time.monotonic()
	publisher.send(group, {"type": "run.events", "events": [{"seq": 5}]})
	assert publisher.flush(timeout=5)

	assert batches == [[1], [2, 3, 4], [5]]
	assert sent_at[1] - sent_at[0] >= 0.5  # the burst waited out the linger
	assert sent_at[2] - asked < 0.4  # a lone message is not held back
