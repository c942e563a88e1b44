"""What a definition refers to outside itself, and how validation asks about it.

Validation is pure: it never queries the database. A caller that wants references checked
(publishing, the API's validate endpoint) passes a :class:`ReferenceResolver` that
answers from the tenant's connectors, workflows and members.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

__all__ = ["ActionInfo", "ReferenceResolver"]


@dataclass(frozen=True, slots=True)
class ActionInfo:
	"""What validation needs to know about an installed connector action.

	Attributes:
		input_schema: JSON Schema of the action's input, or None when it accepts anything.
	"""

	input_schema: dict[str, Any] | None = field(default=None)


class ReferenceResolver(Protocol):
	"""Answers whether the things a definition names exist (in one tenant)."""

	def connector_action(self, connector: str, action: str) -> ActionInfo | None:
		"""The installed action, or None when the connector or the action is unknown."""
		...

	def workflow_exists(self, slug: str, version: int | Literal["latest"]) -> bool:
		"""Whether the workflow has that published version (``latest``: any published version)."""
		...

	def role_exists(self, role: str) -> bool:
		"""Whether the role can be assigned approvals."""
		...

	def user_exists(self, username: str) -> bool:
		"""Whether a member with this username exists."""
		...
