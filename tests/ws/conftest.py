"""Fixtures of the WebSocket tests: the ASGI app with its authentication, tokens, runs that wait."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from config.routing import websocket_urlpatterns
from tests.engine.harness import linear, node
from workflows.context import tenant_scope
from workflows.models import Membership, Run, Tenant, User, Workflow
from workflows.services.definitions import workflow_create, workflow_publish
from workflows.services.runs import run_start
from workflows.services.tokens import api_token_create
from workflows.ws_auth import tenant_auth_stack


def ws_app() -> Any:
	"""The WebSocket side of config.asgi (the allowed-hosts check aside)."""
	return tenant_auth_stack(URLRouter(websocket_urlpatterns))


def token_for(user: User, tenant: Tenant) -> str:
	"""A fresh API token of ``user`` in ``tenant``."""
	with tenant_scope(tenant):
		return api_token_create(actor=user, tenant=tenant, name="ws").raw


def owner_of(tenant: Tenant) -> User:
	"""The tenant's owner (tenant_factory makes one)."""
	return Membership.objects.for_tenant(tenant).get().user


def waiting_workflow(tenant: Tenant) -> Workflow:
	"""A published workflow whose runs wait an hour after starting: each start is a few events."""
	owner = owner_of(tenant)
	workflow = workflow_create(
		actor=owner, tenant=tenant, name="Waits", definition=linear(node("nap", "wait", duration="PT1H"))
	)
	workflow_publish(actor=owner, workflow=workflow)
	return workflow


def start(workflow: Workflow) -> Run:
	"""Start a run of ``workflow`` as its tenant's owner (commits, then publishes its events)."""
	return run_start(actor=owner_of(workflow.tenant), workflow=workflow)


async def connect(path: str, raw: str) -> WebsocketCommunicator:
	"""Open ``path`` with a bearer token; the connected communicator."""
	communicator = WebsocketCommunicator(
		ws_app(), path, headers=[(b"authorization", f"Bearer {raw}".encode())]
	)
	connected, code = await communicator.connect(timeout=10)
	assert connected, f"refused with {code}"
	return communicator


@pytest.fixture
def setup(tenant_factory: Callable[..., Tenant]) -> Callable[[], Awaitable[tuple[Tenant, Workflow, str]]]:
	"""A tenant, a workflow whose runs wait, and a token of its owner."""

	def make() -> tuple[Tenant, Workflow, str]:
		tenant = tenant_factory()
		return tenant, waiting_workflow(tenant), token_for(owner_of(tenant), tenant)

	return sync_to_async(make)


@pytest.fixture
def tenant_stream() -> Callable[..., Awaitable[WebsocketCommunicator]]:
	"""Open ``/ws/tenant/`` with a bearer token (and a cursor); returns the connected communicator."""

	async def open_(raw: str, cursor: str | None = None) -> WebsocketCommunicator:
		path = "/ws/tenant/" if cursor is None else f"/ws/tenant/?cursor={cursor}"
		communicator = WebsocketCommunicator(
			ws_app(), path, headers=[(b"authorization", f"Bearer {raw}".encode())]
		)
		connected, code = await communicator.connect(timeout=10)
		assert connected, f"refused with {code}"
		return communicator

	return open_
