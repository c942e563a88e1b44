"""The Celery application: queues, routing, and settings read from Django's (CELERY_*)."""

from __future__ import annotations

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("apg")
app.config_from_object("django.conf:settings", namespace="CELERY")
# engine: advancing runs (short, DB-bound); steps: I/O-bound actions, run with high
# concurrency; steps.cpu: CPU-bound actions, one per core.
app.conf.task_queues = (Queue("engine"), Queue("steps"), Queue("steps.cpu"))
app.conf.task_default_queue = "engine"
app.autodiscover_tasks()

__all__ = ["app"]
