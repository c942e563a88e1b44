"""The connectors every installation has: HTTP, transform, delay, no-op, fail and compute.

Plain Python: no Django. Import through :func:`builtin_connectors` (the registry does) rather
than one by one.
"""

from __future__ import annotations

from connectors.builtin import compute, delay, fail, http, noop, transform
from connectors.sdk import Connector

__all__ = ["builtin_connectors"]


def builtin_connectors() -> list[Connector]:
	"""Every built-in connector, sorted by name."""
	return [
		compute.connector,
		delay.connector,
		fail.connector,
		http.connector,
		noop.connector,
		transform.connector,
	]
