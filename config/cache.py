"""Django's Redis cache with one connection pool per process instead of one per request.

Django keeps a cache backend per thread and asynchronous context, and each backend object
opens its own ``redis.ConnectionPool``. Under ASGI every request runs in a context (and a
worker thread) of its own, so every request built a new pool and with it a new TCP
connection to Redis, and redis-py's connection handshake (``CLIENT SETINFO``, which also
reads the package metadata from disk): most of the rate limits' cost per request, and a
connection per request for Redis to accept and drop. Here the pools (and the thread-safe
``redis.Redis`` client over each) are shared by every backend object of the process with the
same server and options; redis-py's pools are thread-safe and reset themselves after a fork.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, ClassVar

from django.core.cache.backends import redis as django_redis

__all__ = ["RedisCache"]


class _SharedPoolClient(django_redis.RedisCacheClient):
	"""A cache client whose pools and clients are shared by the whole process."""

	# Set by Django's client (private there, so not in its type stubs).
	_servers: list[str]
	_pool_class: Any
	_pool_options: dict[str, Any]
	_client: Any
	_get_connection_pool_index: Callable[[bool], int]

	_shared: ClassVar[dict[tuple[str, str], Any]] = {}
	_lock: ClassVar[threading.Lock] = threading.Lock()

	def _shared_key(self, index: int) -> tuple[str, str]:
		options = sorted((name, repr(value)) for name, value in self._pool_options.items())
		return self._servers[index], repr((self._pool_class, options))

	def _get_connection_pool(self, write: bool) -> Any:
		return self._shared_client(write).connection_pool

	def _shared_client(self, write: bool) -> Any:
		key = self._shared_key(self._get_connection_pool_index(write))
		client = self._shared.get(key)
		if client is None:
			with self._lock:
				client = self._shared.get(key)
				if client is None:
					pool = self._pool_class.from_url(key[0], **self._pool_options)
					client = self._shared[key] = self._client(connection_pool=pool)
		return client

	def get_client(self, key: Any = None, *, write: bool = False) -> Any:
		return self._shared_client(write)


class RedisCache(django_redis.RedisCache):
	"""``django.core.cache.backends.redis.RedisCache`` over process-wide connection pools."""

	def __init__(self, server: str | list[str], params: dict[str, Any]) -> None:
		super().__init__(server, params)
		self._class = _SharedPoolClient
