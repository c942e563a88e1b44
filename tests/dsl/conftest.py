"""Fixtures for the definition DSL tests: a fake reference resolver."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import pytest

from workflows.dsl import ActionInfo


@dataclass
class FakeResolver:
	"""Answers reference questions from in-memory sets; records what it was asked."""

	actions: dict[tuple[str, str], ActionInfo] = field(default_factory=dict)
	workflows: set[tuple[str, int | str]] = field(default_factory=set)
	roles: set[str] = field(default_factory=lambda: {"viewer", "editor", "operator", "admin", "owner"})
	users: set[str] = field(default_factory=set)
	asked: list[tuple[str, Any]] = field(default_factory=list)

	def connector_action(self, connector: str, action: str) -> ActionInfo | None:
		self.asked.append(("action", (connector, action)))
		return self.actions.get((connector, action))

	def workflow_exists(self, slug: str, version: int | Literal["latest"]) -> bool:
		self.asked.append(("workflow", (slug, version)))
		if version == "latest":
			return any(known == slug for known, _ in self.workflows)
		return (slug, version) in self.workflows

	def role_exists(self, role: str) -> bool:
		self.asked.append(("role", role))
		return role in self.roles

	def user_exists(self, username: str) -> bool:
		self.asked.append(("user", username))
		return username in self.users


HTTP_INPUT_SCHEMA: dict[str, Any] = {
	"type": "object",
	"required": ["url"],
	"additionalProperties": False,
	"$defs": {"method": {"enum": ["GET", "POST", "PUT", "DELETE"]}},
	"properties": {
		"url": {"type": "string"},
		"method": {"$ref": "#/$defs/method"},
		"timeout": {"type": "number", "minimum": 0},
		"json": {},
		"headers": {"type": "object", "additionalProperties": {"type": "string"}},
	},
}


@pytest.fixture
def resolver() -> FakeResolver:
	"""A resolver knowing http.request (with an input schema), a workflow, and user alice."""
	return FakeResolver(
		actions={
			("http", "request"): ActionInfo(input_schema=HTTP_INPUT_SCHEMA),
			("slack", "post"): ActionInfo(),
		},
		workflows={("child", 1), ("child", 2)},
		users={"alice"},
	)
