"""Raw Celery tasks for the benchmarks: the baseline the engine is compared with, and a readiness ping.

Workers started by :mod:`bench.common` import this module (``-I bench.baseline_tasks``), so the
baseline runs on exactly the worker processes, pool and broker the engine's steps run on.
Results go through Redis lists (the project runs Celery without a result backend).
"""

from __future__ import annotations

import time
from functools import cache

import redis
from django.conf import settings

from config.celery import app
from connectors.builtin.compute import naive_fibonacci

__all__ = ["DONE_KEY", "PING_KEY", "ping", "work"]

PING_KEY = "bench:ping:{token}"
DONE_KEY = "bench:done:{token}"


@cache
def _redis() -> redis.Redis:
	return redis.Redis.from_url(settings.REDIS_URL or "redis://127.0.0.1:6379/0")


@app.task(name="bench.ping", ignore_result=True)
def ping(token: str, queue: str) -> None:
	"""Answer on a Redis list: proves a worker consumes ``queue`` and is ready."""
	_redis().lpush(PING_KEY.format(token=token), queue)


@app.task(name="bench.work", acks_late=True, ignore_result=True)
def work(n: int = 0, token: str | None = None) -> None:
	"""One baseline task: nothing (``n=0``) or ``fib(n)``; the last of a chain reports its finish time."""
	if n:
		naive_fibonacci(n)
	if token is not None:
		_redis().lpush(DONE_KEY.format(token=token), repr(time.time()))
