"""Opt-in patches that model proposed engine fixes, to measure their gain before anyone writes them.

Off unless ``BENCH_WHATIF`` names them (comma-separated); the benchmarks' ``--whatif`` option
sets it for the client and the workers (which import this module with ``-I``). Nothing here
changes the project's files: the patches live only in the benchmark's processes.

``keep-db`` and ``lock-run-only`` modelled fixes that commit 5b66f78 then made in the engine
(``CELERY_DB_REUSE_MAX``; ``select_for_update(of=("self",), no_key=True)`` in ``advance``); on
a tree with those fixes they change (next to) nothing. ``publish-loop`` is still open.

- ``keep-db``: keep database connections across tasks. Celery's Django fix-up closes every
  connection before and after each task on a prefork pool, and with Django's psycopg pool on
  it closes the whole pool (``close_pool``), so every step opens new PostgreSQL connections.
- ``lock-run-only``: ``advance`` locks only the run row. Its ``select_for_update()`` has a
  ``select_related("tenant")`` join and no ``of=``, so PostgreSQL also locks the tenant row
  FOR UPDATE: every transition of a tenant's runs, and every insert of a row that references
  the tenant (its foreign-key check takes KEY SHARE on it), waits for the one in progress.
  The patch adds ``of=("self",)`` to row locks on runs.
- ``publish-loop``: publish live events through one long-lived event loop per process (both
  group sends in one coroutine) instead of two ``async_to_sync`` calls, each of which starts a
  thread, a new event loop and a new Redis connection.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import threading
from typing import Any

__all__ = ["ENABLED", "apply"]

ENABLED = frozenset(p.strip() for p in os.environ.get("BENCH_WHATIF", "").split(",") if p.strip())
KNOWN = frozenset({"keep-db", "lock-run-only", "publish-loop"})

_logger = logging.getLogger("bench.whatif")
_lock = threading.Lock()
_loop: tuple[int, asyncio.AbstractEventLoop] | None = None


def _event_loop() -> asyncio.AbstractEventLoop:
	"""This process's publishing loop, running on a daemon thread (made again after a fork)."""
	global _loop
	with _lock:
		if _loop is None or _loop[0] != os.getpid():
			loop = asyncio.new_event_loop()
			threading.Thread(target=loop.run_forever, name="bench-publish-loop", daemon=True).start()
			_loop = (os.getpid(), loop)
		return _loop[1]


def publish_events(*, run_id: str, tenant_id: str, events: list[tuple[int, str, str, Any]]) -> None:
	"""Same messages as ``workflows.engine.effects.publish_events``, sent from a persistent loop."""
	if not events:
		return
	from channels.layers import get_channel_layer

	from workflows.engine.effects import run_group, tenant_group

	layer = get_channel_layer()
	if layer is None:
		return
	batch = [
		{"run": run_id, "seq": seq, "type": type_, "step": step, "data": data}
		for seq, type_, step, data in events
	]

	async def send() -> None:
		await layer.group_send(run_group(run_id), {"type": "run.events", "events": batch})
		await layer.group_send(tenant_group(tenant_id), {"type": "tenant.events", "events": batch})

	try:
		asyncio.run_coroutine_threadsafe(send(), _event_loop()).result(timeout=5)
	except Exception:  # noqa: BLE001 - best effort, like the original
		_logger.warning("could not publish live events of run %s", run_id, exc_info=True)


def apply() -> None:
	"""Install the patches named in ``BENCH_WHATIF``."""
	unknown = ENABLED - KNOWN
	if unknown:
		raise SystemExit(f"BENCH_WHATIF: unknown patch(es) {sorted(unknown)}; known: {sorted(KNOWN)}")
	if "keep-db" in ENABLED:
		fixup = importlib.import_module("celery.fixups.django")

		def keep(self: object, **kwargs: Any) -> None:
			return None

		fixup.DjangoWorkerFixup.close_database = keep
	if "lock-run-only" in ENABLED:
		from django.db.models.query import QuerySet

		from workflows.models import Run

		original = QuerySet.select_for_update

		def select_for_update(self: QuerySet, *args: Any, **kwargs: Any) -> QuerySet:
			if self.model is Run and not kwargs.get("of"):
				kwargs["of"] = ("self",)
			return original(self, *args, **kwargs)

		QuerySet.select_for_update = select_for_update
	if "publish-loop" in ENABLED:
		from workflows.engine import effects

		effects.publish_events = publish_events


apply()
