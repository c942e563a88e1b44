"""The registry of installed connectors: what the engine can run and the designer can show.

Importing this module is cheap and imports no connector: the built-ins load on the first call
to :func:`default_registry` (or an explicit :func:`load_builtins`), which keeps
``connectors.registry`` free of import cycles with the code the built-ins use.

Plain Python: no Django.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from connectors.sdk import Action, Connector

__all__ = ["DuplicateConnectorError", "Registry", "default_registry", "load_builtins"]


class DuplicateConnectorError(ValueError):
	"""A connector with the same name is already registered."""


class Registry:
	"""A set of connectors, by unique name. Thread-safe.

	Args:
		connectors: Connectors to register at once.

	Raises:
		DuplicateConnectorError: Two of ``connectors`` share a name.
	"""

	def __init__(self, connectors: Iterable[Connector] = ()) -> None:
		self._lock = threading.Lock()
		self._connectors: dict[str, Connector] = {}
		for connector in connectors:
			self.register(connector)

	def __repr__(self) -> str:
		return f"Registry({sorted(self._connectors)!r})"

	def __contains__(self, name: object) -> bool:
		return name in self._connectors

	def __len__(self) -> int:
		return len(self._connectors)

	def register(self, connector: Connector) -> Connector:
		"""Add ``connector``.

		Returns:
			The connector, so a module can write ``connector = registry.register(Connector(...))``.

		Raises:
			DuplicateConnectorError: A connector with that name is already registered (even
				the same one: registering twice is a bug in the caller's start-up code).
		"""
		with self._lock:
			existing = self._connectors.get(connector.name)
			if existing is not None:
				raise DuplicateConnectorError(
					f"a connector named {connector.name!r} is already registered (version "
					f"{existing.version}); give the new connector another name"
				)
			self._connectors[connector.name] = connector
		return connector

	def get(self, name: str) -> Connector | None:
		"""The connector called ``name``, or None."""
		return self._connectors.get(name)

	def get_action(self, connector: str, action: str) -> Action[Any, Any] | None:
		"""The action ``connector.action``, or None when either is not installed."""
		found = self._connectors.get(connector)
		return None if found is None else found.get_action(action)

	def connectors(self) -> list[Connector]:
		"""Every connector, sorted by name."""
		with self._lock:
			return [self._connectors[name] for name in sorted(self._connectors)]

	def catalog(self) -> list[dict[str, Any]]:
		"""What the marketplace listing and the designer palette show, sorted by name.

		Returns:
			JSON-ready dicts: ``name``, ``title``, ``description``, ``version`` and ``actions``,
			each action with its ``key``, ``title``, ``description``, ``cpu_bound``,
			``idempotent``, ``input_schema`` and ``output_schema``.
		"""
		return [connector.describe() for connector in self.connectors()]


_default: Registry | None = None
_default_lock = threading.Lock()


def load_builtins(registry: Registry | None = None) -> Registry:
	"""Register the built-in connectors in ``registry``, skipping those it already holds.

	Args:
		registry: Where to register them; None means the :func:`default_registry`, which
			loads them itself on first use.

	Returns:
		``registry``.

	Raises:
		DuplicateConnectorError: ``registry`` holds a different connector under a built-in's name.
	"""
	if registry is None:
		return default_registry()
	from connectors.builtin import builtin_connectors

	for connector in builtin_connectors():
		if registry.get(connector.name) is not connector:
			registry.register(connector)
	return registry


def default_registry() -> Registry:
	"""The process-wide registry, holding the built-ins (loaded on the first call)."""
	global _default
	with _default_lock:
		if _default is None:
			_default = load_builtins(Registry())
		return _default
