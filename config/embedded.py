"""The embedded worker: Celery running inside the web process, for the zero-configuration setup.

With no REDIS_URL the broker is kombu's in-memory transport, which only the process that
holds it can see, so the worker must live in the web process. It is a real Celery worker
(threads pool) consuming the same queues as production workers, plus beat as a thread;
nothing in the web process ever blocks on a task result.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from django.conf import settings

__all__ = ["EmbeddedWorker", "autostart", "embedded_worker"]


class EmbeddedWorker:
	"""A Celery worker and beat running on daemon threads of this process."""

	logger = logging.getLogger("apg.embedded")

	def __init__(self, *, concurrency: int, with_beat: bool = True) -> None:
		self.concurrency = concurrency
		self.with_beat = with_beat
		self._controller: Any = None
		self._beat: Any = None
		self._thread: threading.Thread | None = None

	@property
	def running(self) -> bool:
		"""Whether the worker thread is alive."""
		return self._thread is not None and self._thread.is_alive()

	def start(self) -> None:
		"""Start consuming on a daemon thread; returns at once (tasks queue until it is up)."""
		if self.running:
			return
		from celery.beat import EmbeddedService

		from config.celery import app

		self._controller = app.WorkController(
			pool_cls="threads",
			concurrency=self.concurrency,
			queues=["engine", "steps", "steps.cpu"],
			without_heartbeat=True,
			without_mingle=True,
			without_gossip=True,
			optimization="fair",
			hostname=f"embedded@{settings.DATA_DIR.name}",
		)

		self._thread = threading.Thread(target=self._run, name="apg-embedded-worker", daemon=True)
		self._thread.start()
		if self.with_beat:
			self._beat = EmbeddedService(app, scheduler_cls=settings.CELERY_BEAT_SCHEDULER, thread=True)
			self._beat.start()
		self._log_started()

	def _run(self) -> None:
		try:
			self._controller.start()
		except Exception:  # pragma: no cover - logged, the web process keeps serving
			self.logger.exception("embedded worker stopped with an error")

	def stop(self, *, timeout: float = 10.0) -> None:
		"""Finish running tasks (up to ``timeout``) and stop."""
		if self._beat is not None:
			self._beat.stop()
			self._beat = None
		if self._controller is not None:
			self._controller.stop(in_sighandler=False, exitcode=0)
		if self._thread is not None:
			self._thread.join(timeout)
		self._thread = None
		self._controller = None
		self._log_stopped()

	def _log_started(self) -> None:
		self.logger.info(
			"embedded worker started (threads=%s, beat=%s, broker=%s)",
			self.concurrency,
			self.with_beat,
			settings.CELERY_BROKER_URL.split("@")[-1],
		)

	def _log_stopped(self) -> None:
		self.logger.info("embedded worker stopped")


_worker: EmbeddedWorker | None = None
_lock = threading.Lock()


def embedded_worker() -> EmbeddedWorker:
	"""The process's one embedded worker (created on first use, not started)."""
	global _worker
	with _lock:
		if _worker is None:
			_worker = EmbeddedWorker(concurrency=settings.EMBEDDED_WORKER_CONCURRENCY)
		return _worker


def autostart() -> EmbeddedWorker | None:
	"""Start the embedded worker when the settings ask for one (EMBEDDED_WORKER)."""
	if not settings.EMBEDDED_WORKER:
		return None
	worker = embedded_worker()
	worker.start()
	return worker
