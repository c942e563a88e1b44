"""Live delivery to many clients: what keeps one published event cheap for each connection."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.db import connections

from tests.ws.conftest import owner_of, start, token_for, waiting_workflow, ws_app
from workflows.engine.effects import run_group, tenant_group
from workflows.models import Run, Tenant

pytestmark = pytest.mark.django_db(transaction=True)

Stream = Callable[..., Awaitable[WebsocketCommunicator]]


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


@pytest.mark.parametrize("stream", ["tenant", "run"])
async def test_a_live_event_is_not_held_up_by_a_slow_database_call_of_the_process(
	waiting_run: Callable[[], Awaitable[tuple[Run, str]]], stream: str
) -> None:
	run, raw = await waiting_run()
	path = "/ws/tenant/" if stream == "tenant" else f"/ws/runs/{run.pk}/"
	communicator = WebsocketCommunicator(
		ws_app(), path, headers=[(b"authorization", f"Bearer {raw}".encode())]
	)
	connected, _ = await communicator.connect(timeout=10)
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

	assert connected
	assert received["event"] == event
