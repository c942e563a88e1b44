"""Fixtures for the runs API: eager engine, published workflows, clients per role."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.engine import conftest as engine_fixtures
from tests.engine.harness import END, START, definition, linear, node, task
from workflows.models import Tenant, User, Workflow
from workflows.roles import Role

# The engine's fixtures, shared as they are (pytest finds fixtures by module attribute).
eager = engine_fixtures.eager
publish = engine_fixtures.publish
settle = engine_fixtures.settle

ORDER_SCHEMA = {
	"type": "object",
	"required": ["order"],
	"properties": {"order": {"type": "string"}, "amount": {"type": "number"}},
}
BUDGET_FORM = {"type": "object", "required": ["budget"], "properties": {"budget": {"type": "integer"}}}


def approval_flow(**config: Any) -> dict[str, Any]:
	"""start -> an approval for operators (a budget form) -> end, whatever the decision."""
	review = node("review", "approval", role="operator", form_schema=BUDGET_FORM, **config)
	edges = [("start", "review"), ("review", "end", "approved"), ("review", "end", "rejected")]
	return definition([START, review, END], edges)


@pytest.fixture
def flows(publish: Callable[..., Workflow]) -> dict[str, Workflow]:
	"""Published workflows: one that succeeds, waits an hour, fails, asks for approval, waits for an event."""
	return {
		"orders": publish(linear(task("work"), input_schema=ORDER_SCHEMA), name="Orders", slug="orders"),
		"waits": publish(linear(node("nap", "wait", duration="PT1H")), name="Waits"),
		"fails": publish(linear(task("boom", "fail.fail", input={"code": "nope"})), name="Fails"),
		"approval": publish(approval_flow(), name="Review"),
		"event": publish(
			linear(node("paid", "wait_for_event", event_type="order.paid", correlation="${ .input.order }")),
			name="Paid",
		),
	}


@pytest.fixture
def clients(
	tenant: Tenant,
	owner: User,
	member_factory: Callable[..., User],
	token_client: Callable[[User, Tenant], APIClient],
) -> dict[str, APIClient]:
	"""An API client per role in ``tenant``."""
	made = {
		role.value: token_client(member_factory(tenant, role), tenant) for role in Role if role != Role.OWNER
	}
	made["owner"] = token_client(owner, tenant)
	return made


@pytest.fixture
def api(clients: dict[str, APIClient], settle: Callable[..., Any]) -> Callable[..., Any]:
	"""``api(method, url, data=None, role="owner")``: a JSON request with on-commit effects executed."""

	def call(method: str, url: str, data: Any = None, *, role: str = "owner") -> Any:
		client = clients[role]
		if method == "get":
			return settle(client.get, url, data or {})
		return settle(getattr(client, method), url, data if data is not None else {}, format="json")

	return call
