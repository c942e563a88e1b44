"""Fixtures for the GraphQL API: a client per role, published workflows, an eager engine.

``gql(query, variables, role=...)`` posts one operation with a token of that role and runs
the after-commit work (the engine's) it scheduled, like ``api`` does for REST.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.api_runs import conftest as runs_fixtures
from tests.engine import conftest as engine_fixtures

# The REST suites' fixtures, shared as they are (pytest finds fixtures by module attribute).
eager = engine_fixtures.eager
publish = engine_fixtures.publish
settle = engine_fixtures.settle
flows = runs_fixtures.flows
clients = runs_fixtures.clients


@dataclass(frozen=True)
class Reply:
	"""A GraphQL response: its HTTP status, ``data`` and ``errors``."""

	status: int
	data: Any
	errors: list[dict[str, Any]]

	@property
	def codes(self) -> list[str]:
		"""``extensions.code`` of each error, in order."""
		return [e.get("extensions", {}).get("code") for e in self.errors]

	@property
	def error(self) -> dict[str, Any]:
		"""The only error."""
		assert len(self.errors) == 1, self.errors
		return self.errors[0]

	def ok(self) -> Any:
		"""``data``, asserting there was no error."""
		assert not self.errors, self.errors
		assert self.status == 200
		return self.data

	def pointers(self) -> set[str]:
		"""The pointers of the only error, a VALIDATION one."""
		assert self.error["extensions"]["code"] == "VALIDATION", self.error
		return {e["pointer"] for e in self.error["extensions"]["errors"]}


Gql = Callable[..., Reply]


def post(client: APIClient, query: str, variables: dict[str, Any] | None = None) -> Reply:
	"""Post one operation with ``client``."""
	body: dict[str, Any] = {"query": query}
	if variables is not None:
		body["variables"] = variables
	response = client.post("/graphql", body, format="json")
	payload = response.json()
	assert "Traceback" not in response.content.decode()
	return Reply(status=response.status_code, data=payload.get("data"), errors=payload.get("errors") or [])


@pytest.fixture
def gql(clients: dict[str, APIClient], settle: Callable[..., Any]) -> Gql:
	"""``gql(query, variables=None, role="owner")``: one operation, with on-commit effects executed."""

	def call(query: str, variables: dict[str, Any] | None = None, *, role: str = "owner") -> Reply:
		return settle(post, clients[role], query, variables)

	return call
