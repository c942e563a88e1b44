"""Live delivery to many clients: what keeps one published event cheap for each connection."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.db import connections
from django.utils.module_loading import import_string

from config.settings.base import redis_channel_layer
from tests.conftest import port_open
from tests.engine.harness import END, START, definition, node
from tests.ws.conftest import connect, owner_of, start, token_for, waiting_workflow
from tests.ws.test_tenant_stream import commit_event
from workflows.engine.effects import run_group, tenant_group
from workflows.models import Approval, Run, RunEvent, Tenant
from workflows.services.definitions import workflow_create, workflow_publish
from workflows.services.runs import run_cancel, run_start
from workflows.tasks import notify_approval_task

Stream = Callable[..., Awaitable[WebsocketCommunicator]]


async def drain(communicator: WebsocketCommunicator) -> list[dict[str, Any]]:
	received = []
	while not await communicator.receive_nothing(timeout=0.5):
		received.append(await communicator.receive_json_from(timeout=10))
	return received


async def caught_up(communicator: WebsocketCommunicator) -> dict[str, Any]:
	while True:
		message = await communicator.receive_json_from(timeout=10)
		if message["type"] == "caught_up":
			return message


@pytest.fixture
def waiting_run(tenant_factory: Callable[..., Tenant]) -> Callable[[], Awaitable[tuple[Run, str]]]:
	"""A run that waits (its events committed), and a token of its tenant's owner."""

	def make() -> tuple[Run, str]:
		tenant = tenant_factory()
		return start(waiting_workflow(tenant)), token_for(owner_of(tenant), tenant)

	return sync_to_async(make)


@pytest.mark.django_db(transaction=True)
async def test_both_streams_send_a_published_event_as_it_was_recorded(
	waiting_run: Callable[[], Awaitable[tuple[Run, str]]],
) -> None:
	run, raw = await waiting_run()
	tenant_client = await connect("/ws/tenant/", raw)
	await caught_up(tenant_client)
	run_client = await connect(f"/ws/runs/{run.pk}/", raw)
	last = (await caught_up(run_client))["seq"]

	await sync_to_async(lambda: run_cancel(actor=owner_of(run.tenant), run=run))()
	to_tenant, to_run = await drain(tenant_client), await drain(run_client)
	await tenant_client.disconnect()
	await run_client.disconnect()

	def recorded() -> list[dict[str, Any]]:
		return [
			{"run": str(run.pk), "seq": e.seq, "type": e.type, "step": e.step_key, "data": e.data}
			for e in RunEvent.objects.for_tenant(run.tenant).filter(run=run, seq__gt=last).order_by("seq")
		]

	expected = await sync_to_async(recorded)()
	await sync_to_async(connections.close_all)()
	assert expected
	assert [m["event"] for m in to_tenant] == expected
	assert [m["event"] for m in to_run] == expected
	assert all(m["type"] == "event" and m["cursor"] for m in to_tenant)


@pytest.mark.django_db(transaction=True)
async def test_an_approval_notice_reaches_the_tenant_stream(tenant_factory: Callable[..., Tenant]) -> None:
	def setup() -> tuple[Run, str]:
		tenant = tenant_factory()
		owner = owner_of(tenant)
		workflow = workflow_create(
			actor=owner,
			tenant=tenant,
			name="Asks",
			definition=definition(
				[START, node("ok", "approval", role="admin"), END],
				[("start", "ok"), ("ok", "end", "approved")],
			),
		)
		workflow_publish(actor=owner, workflow=workflow)
		return run_start(actor=owner, workflow=workflow), token_for(owner, tenant)

	run, raw = await sync_to_async(setup)()
	client = await connect("/ws/tenant/", raw)
	await caught_up(client)

	await sync_to_async(notify_approval_task)(str(run.pk), "root:ok")
	received = await drain(client)
	await client.disconnect()
	approval = await sync_to_async(lambda: Approval.objects.for_tenant(run.tenant).get(run=run))()
	await sync_to_async(connections.close_all)()

	assert [m["event"]["type"] for m in received] == ["approval.open"]
	assert received[0]["event"]["step"] == "root:ok"
	assert received[0]["event"]["data"]["approval"] == str(approval.pk)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("stream", ["tenant", "run"])
async def test_a_live_event_is_not_held_up_by_a_slow_database_call_of_the_process(
	waiting_run: Callable[[], Awaitable[tuple[Run, str]]], stream: str
) -> None:
	run, raw = await waiting_run()
	communicator = await connect("/ws/tenant/" if stream == "tenant" else f"/ws/runs/{run.pk}/", raw)
	last = await caught_up(communicator)
	layer = get_channel_layer()
	assert layer is not None
	# Another connection's slow query holds the process's one thread for thread-sensitive calls.
	release = threading.Event()
	slow = asyncio.ensure_future(sync_to_async(release.wait)())
	try:
		if stream == "tenant":
			event = {"run": str(uuid.uuid4()), "seq": 1, "type": "note", "step": "", "data": {}}
			await layer.group_send(tenant_group(run.tenant_id), {"type": "tenant.events", "events": [event]})
		else:
			event = {"run": str(run.pk), "seq": last["seq"] + 1, "type": "note", "step": "", "data": {}}
			await layer.group_send(run_group(run.pk), {"type": "run.events", "events": [event]})
		received = await communicator.receive_json_from(timeout=2)
	finally:
		release.set()
		await slow
	await communicator.disconnect()
	await sync_to_async(connections.close_all)()

	assert received["event"] == event


@pytest.mark.django_db(transaction=True)
async def test_the_run_stream_reads_what_a_live_message_skipped_over(
	waiting_run: Callable[[], Awaitable[tuple[Run, str]]],
) -> None:
	run, raw = await waiting_run()
	communicator = await connect(f"/ws/runs/{run.pk}/", raw)
	last = (await caught_up(communicator))["seq"]
	layer = get_channel_layer()
	assert layer is not None

	# Two events committed; the message of the first was lost (or is still on its way).
	first = await sync_to_async(commit_event)(run)
	second = await sync_to_async(commit_event)(run)
	await layer.group_send(run_group(run.pk), {"type": "run.events", "events": [second]})
	received = [await communicator.receive_json_from(timeout=5) for _ in range(2)]
	await layer.group_send(run_group(run.pk), {"type": "run.events", "events": [first]})
	late = await communicator.receive_nothing(timeout=0.5)
	await communicator.disconnect()
	await sync_to_async(connections.close_all)()

	assert [m["event"]["seq"] for m in received] == [last + 1, last + 2]
	assert [m["event"] for m in received] == [first, second]
	assert late  # the late message of the first is not sent twice


@pytest.fixture
def restartable_redis(redis_server_binary: str, tmp_path: Path) -> Iterator[tuple[str, Callable[[], None]]]:
	"""A redis-server of the test's own (its URL) and a function that restarts it, empty, on the same port."""
	with socket.socket() as sock:
		sock.bind(("127.0.0.1", 0))
		port = sock.getsockname()[1]
	command = [
		redis_server_binary,
		"--port",
		str(port),
		"--bind",
		"127.0.0.1",
		"--save",
		"",
		"--dir",
		str(tmp_path),
	]
	process: list[subprocess.Popen[bytes]] = []

	def start_() -> None:
		process[:] = [subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
		deadline = time.monotonic() + 10
		while not port_open("127.0.0.1", port):
			assert time.monotonic() < deadline, "redis-server did not start"
			time.sleep(0.05)

	def restart() -> None:
		process[0].terminate()
		process[0].wait()
		start_()

	start_()
	try:
		yield f"redis://127.0.0.1:{port}/3", restart
	finally:
		process[0].kill()
		process[0].wait()


async def test_a_server_keeps_its_groups_when_redis_restarts(
	restartable_redis: tuple[str, Callable[[], None]],
) -> None:
	url, restart = restartable_redis
	layer = redis_channel_layer(url)
	backend = import_string(layer["BACKEND"])
	server, worker = backend(**layer["CONFIG"]), backend(**layer["CONFIG"])
	channel = await server.new_channel()
	await server.group_add("tenant.t", channel)
	received = asyncio.ensure_future(server.receive(channel))

	# Redis restarts empty: no group is stored there, the server subscribes again when it reconnects.
	await sync_to_async(restart)()
	deadline = time.monotonic() + 15
	while not received.done() and time.monotonic() < deadline:
		# Delivery is at most once: what is published before the server has reconnected is lost.
		with contextlib.suppress(redis.ConnectionError):
			await worker.group_send("tenant.t", {"type": "tenant.events", "events": []})
		await asyncio.wait([received], timeout=0.2)
	message = received.result() if received.done() else None
	received.cancel()
	await server.flush()
	await worker.flush()

	assert message == {"type": "tenant.events", "events": []}
