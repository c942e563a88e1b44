"""The Redis cache keeps its connections across requests (one pool per process), and survives losing them."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import caches

from config.cache import RedisCache

pytestmark = pytest.mark.usefixtures("redis_configured")


def _in_a_new_thread(work: Any) -> Any:
	"""Run ``work`` in a thread of its own, as Django under ASGI runs each request's sync code."""
	result: list[Any] = []
	thread = threading.Thread(target=lambda: result.append(work()))
	thread.start()
	thread.join()
	return result[0]


def test_requests_in_new_threads_reuse_the_same_redis_connection() -> None:
	key = f"test-cache-{uuid.uuid4().hex}"

	def request() -> Any:
		# Django hands each thread (and ASGI context) a cache object of its own.
		cache = caches["default"]
		cache.set(key, "v", 30)
		assert cache.get(key) == "v"
		return cache._cache.get_client(write=True).connection_pool  # pyright: ignore[reportAttributeAccessIssue]

	def connections(pool: Any) -> int:
		return len(pool._available_connections) + len(pool._in_use_connections)

	pool = request()
	before = connections(pool)

	served = [_in_a_new_thread(request) for _ in range(10)]

	assert {id(p) for p in served} == {id(pool)}
	assert connections(pool) == before


def test_caches_on_other_redis_databases_keep_their_own_keys() -> None:
	location = settings.CACHES["default"]["LOCATION"]
	base, _, db = location.rpartition("/")
	other_location = f"{base}/{(int(db or 0) + 1) % 16}"
	here = RedisCache(location, {"KEY_PREFIX": "apg-test-cache"})
	there = RedisCache(other_location, {"KEY_PREFIX": "apg-test-cache"})
	key = f"k-{uuid.uuid4().hex}"

	here.set(key, "here", 30)

	assert there.get(key) is None
	assert here.get(key) == "here"
	here.delete(key)


def test_a_connection_dropped_by_redis_is_replaced_on_the_next_request() -> None:
	cache = caches["default"]
	key = f"test-cache-{uuid.uuid4().hex}"
	cache.set(key, 1, 30)
	client = cache._cache.get_client(write=True)  # pyright: ignore[reportAttributeAccessIssue]
	# Redis closes every client connection but this one (a restart or an idle timeout, say).
	killer = client.connection_pool.make_connection()
	try:
		killer.send_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
		assert killer.read_response() >= 1
	finally:
		killer.disconnect()

	assert cache.incr(key) == 2
