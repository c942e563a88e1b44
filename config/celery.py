"""The Celery application: queues, routing, and settings read from Django's (CELERY_*)."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, signals
from kombu import Exchange, Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("apg")
app.config_from_object("django.conf:settings", namespace="CELERY")
# engine: advancing runs (short, DB-bound); steps: I/O-bound actions, run with high
# concurrency; steps.cpu: CPU-bound actions, one per core.
# Each queue has its own exchange and routing key: with one shared default binding, a
# message sent to one queue would be copied into all three.
app.conf.task_queues = tuple(
	Queue(name, Exchange(name, type="direct"), routing_key=name) for name in ("engine", "steps", "steps.cpu")
)
app.conf.task_default_queue = "engine"
app.autodiscover_tasks()


@signals.worker_init.connect
def _freeze_startup_objects(**_: Any) -> None:
	"""Before the pool forks: start-up objects stay out of the collector's full passes (config/memory.py)."""
	from config.memory import freeze_startup_objects

	freeze_startup_objects()


__all__ = ["app"]
