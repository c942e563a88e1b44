"""Fixtures for trigger tests: a published workflow, a trigger factory, signed webhook requests."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from tests.engine import conftest as engine_fixtures
from tests.engine.harness import END, START, definition, task
from workflows.models import Tenant, User, Workflow
from workflows.services.triggers import IssuedTrigger, trigger_create, webhook_signature

# The engine's fixtures, shared as they are (pytest finds fixtures by module attribute).
eager = engine_fixtures.eager
publish = engine_fixtures.publish
settle = engine_fixtures.settle

ORDER_SCHEMA = {
	"type": "object",
	"required": ["order"],
	"properties": {"order": {"type": "string"}, "amount": {"type": "number"}},
}


def order_flow(**extra: Any) -> dict[str, Any]:
	"""A one-task workflow whose input needs an ``order`` (a string)."""
	return definition(
		[START, task("work"), END], [("start", "work"), ("work", "end")], input_schema=ORDER_SCHEMA, **extra
	)


@pytest.fixture
def workflow(publish: Callable[..., Workflow]) -> Workflow:
	"""A published workflow of the tenant, taking ``{"order": str, "amount": number}``."""
	return publish(order_flow(), name="Orders")


@pytest.fixture
def make_trigger(tenant: Tenant, owner: User, workflow: Workflow) -> Callable[..., IssuedTrigger]:
	"""Create a trigger of ``workflow`` as its owner: ``make_trigger(kind="cron", ...)``."""

	def make(**overrides: Any) -> IssuedTrigger:
		values: dict[str, Any] = {
			"name": f"{overrides.get('kind', 'cron')} trigger",
			"kind": "cron",
		} | overrides
		if values["kind"] == "cron":
			values.setdefault("cron_expression", "*/5 * * * *")
			values.setdefault("input", {"order": "scheduled"})
		if values["kind"] == "event":
			values.setdefault("event_type", "order.paid")
		values.setdefault("workflow", workflow)
		return trigger_create(actor=owner, tenant=tenant, **values)

	return make


@pytest.fixture
def hook(client: Client) -> Callable[..., Any]:
	"""POST to a webhook URL, signed with ``secret`` unless a signature is given."""

	def post(
		token: str,
		secret: str,
		body: bytes | dict[str, Any] | list[Any],
		*,
		timestamp: str | None = None,
		signature: str | None = None,
		headers: dict[str, str] | None = None,
		client_: Client | None = None,
	) -> Any:
		raw = body if isinstance(body, bytes) else json.dumps(body).encode()
		stamp = timestamp if timestamp is not None else str(int(time.time()))
		sent = {
			"X-APG-Timestamp": stamp,
			"X-APG-Signature": signature
			if signature is not None
			else webhook_signature(secret=secret, timestamp=stamp, body=raw),
		} | (headers or {})
		return (client_ or client).post(
			f"/hooks/{token}", data=raw, content_type="application/json", headers=sent
		)

	return post
