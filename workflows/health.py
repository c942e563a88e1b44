"""Liveness (/healthz) and readiness (/readyz) endpoints."""

from __future__ import annotations

import logging
from collections.abc import Callable

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views import View

__all__ = [
	"HealthView",
	"ReadinessView",
	"check_broker",
	"check_cache",
	"check_channel_layer",
	"check_database",
]


def check_database() -> None:
	"""Run a trivial query."""
	with connection.cursor() as cursor:
		cursor.execute("SELECT 1")
		cursor.fetchone()


def check_broker() -> None:
	"""Connect to the Celery broker (instant for the in-memory one)."""
	from config.celery import app

	with app.connection_for_write() as conn:
		conn.ensure_connection(max_retries=1, interval_start=0, interval_step=1, timeout=2)


def check_channel_layer() -> None:
	"""Send one message to an empty group (a round trip to Redis that leaves nothing queued)."""
	layer = get_channel_layer()
	if layer is None:
		raise RuntimeError("no channel layer configured")
	async_to_sync(layer.group_send)("apg.health", {"type": "health.check"})


def check_cache() -> None:
	"""Write and read the cache."""
	cache.set("health:check", 1, timeout=5)
	if cache.get("health:check") != 1:
		raise RuntimeError("the cache did not return what was written")


class HealthView(View):
	"""The process answers; nothing else is checked."""

	def get(self, request: HttpRequest) -> JsonResponse:
		return JsonResponse({"status": "ok"})


class ReadinessView(View):
	"""Database, broker, channel layer and cache reachable: 200, else 503 naming what failed."""

	logger = logging.getLogger("apg.health")
	checks: dict[str, Callable[[], None]] = {
		"database": check_database,
		"broker": check_broker,
		"channel_layer": check_channel_layer,
		"cache": check_cache,
	}

	def get(self, request: HttpRequest) -> JsonResponse:
		results: dict[str, str] = {}
		for name, check in self.checks.items():
			try:
				check()
			except Exception as exc:  # noqa: BLE001 - any failure means not ready, and is reported
				results[name] = (
					f"error: {type(exc).__name__}: {exc}"
					if settings.DEBUG
					else f"error: {type(exc).__name__}"
				)
				self._log_check_failed(name, exc)
			else:
				results[name] = "ok"
		failed = sorted(name for name, result in results.items() if result != "ok")
		status = 503 if failed else 200
		body: dict[str, object] = {"status": "unavailable" if failed else "ok", "checks": results}
		if failed:
			body["failed"] = failed
		return JsonResponse(body, status=status)

	def _log_check_failed(self, name: str, exc: Exception) -> None:
		self.logger.error("readiness check %s failed: %s", name, exc, extra={"check": name})
