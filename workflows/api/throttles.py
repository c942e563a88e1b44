"""Request rate limits per API token (or signed-in user) and per tenant, for REST and GraphQL.

Each limit is a fixed window counted with one atomic cache operation per request
(``cache.add`` starts a window, ``cache.incr`` counts in it). The cache is Redis in
production, so every web process shares the counters; DRF's default throttle keeps a list of
timestamps per client instead, which is O(n) per request and loses counts under concurrency.

Rates come from ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` (``token`` and ``tenant``, set
from API_RATE_PER_TOKEN and API_RATE_PER_TENANT) and are read on every request. A request
over a limit is answered 429 with ``Retry-After`` (whole seconds until the window ends) and
a detail naming the limit. If the cache is unreachable, requests are let through (and
logged): an outage of Redis must not take the API down with it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.cache import BaseCache, caches
from django.core.cache.backends.redis import RedisCache
from django.http import HttpRequest, JsonResponse
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from config.env import parse_rate
from workflows.models import ApiToken, Tenant, User

if TYPE_CHECKING:
	from rest_framework.views import APIView

__all__ = [
	"RateLimited",
	"TenantRateThrottle",
	"TokenRateThrottle",
	"graphql_throttle_response",
	"rate_limit_check",
]

_PERIOD_NAMES = {1: "second", 60: "minute", 3600: "hour", 86400: "day"}


class RateLimited(exceptions.Throttled):
	"""A request over a rate limit: ``detail`` names the limit, ``wait`` is whole seconds."""

	def __init__(self, *, wait: int, detail: str) -> None:
		exceptions.APIException.__init__(self, detail, "throttled")
		self.wait = wait


@dataclass(frozen=True, slots=True)
class _Limit:
	scope: str  # the key in DEFAULT_THROTTLE_RATES
	setting: str  # the environment variable an operator changes
	subject: str  # what is counted, for the message


def _rate(scope: str) -> tuple[int, int] | None:
	value = api_settings.DEFAULT_THROTTLE_RATES.get(scope)
	return None if value is None else parse_rate(str(value))


def _backend() -> BaseCache:
	"""The cache holding the counters (the default one)."""
	return caches["default"]


class _Limiter:
	"""Fixed-window counters in the cache."""

	logger = logging.getLogger("apg.api.throttle")

	def __init__(self, clock: Callable[[], float] = time.time) -> None:
		self.clock = clock

	def check(self, limit: _Limit, ident: str, *, tenant: Tenant | None) -> RateLimited | None:
		"""Count one request of ``ident`` against ``limit``; the refusal when over it."""
		rate = _rate(limit.scope)
		if rate is None:
			return None
		allowed, window = rate
		now = self.clock()
		start = int(now // window) * window
		count = self.hit(f"rl:{limit.scope}:{ident}:{start}", window)
		if count is None or count <= allowed:
			return None
		wait = max(1, math.ceil(start + window - now))
		self._log_limited(limit, ident, tenant)
		period = _PERIOD_NAMES[window]
		return RateLimited(
			wait=wait,
			detail=(
				f"Rate limit exceeded: at most {allowed} requests per {period} {limit.subject} "
				f"({limit.setting}). Retry in {wait} second{'' if wait == 1 else 's'}; spread the "
				"requests out or use the bulk endpoints."
			),
		)

	def hit(self, key: str, window: int) -> int | None:
		"""Count one request in ``key``'s window; the count so far, or None when the cache is down."""
		try:
			backend = _backend()
			if isinstance(backend, RedisCache):
				return self._hit_redis(backend, key, window)
			# add() only succeeds for the window's first request; incr() is atomic in Redis
			# (INCR) and in the local-memory cache (a lock), so concurrent requests never
			# lose a count. The key outlives its window a little so a late incr() finds it.
			if backend.add(key, 1, timeout=window + 5):
				return 1
			try:
				return backend.incr(key)
			except ValueError:  # evicted between add() and incr(): this request starts it again
				backend.add(key, 1, timeout=window + 5)
				return 1
		except Exception as exc:  # any cache failure lets the request through, logged
			self._log_cache_unavailable(key, exc)
			return None

	def _hit_redis(self, redis_cache: RedisCache, key: str, window: int) -> int:
		"""One round trip instead of add() then incr(): INCR (a new key starts at 1) and EXPIRE NX
		(set only on a new key). Django's Redis cache stores integers as plain Redis integers, so
		these are the same counters add() and incr() use."""
		full_key = redis_cache.make_and_validate_key(key)
		client = redis_cache._cache.get_client(full_key, write=True)
		pipe = client.pipeline(transaction=False)
		pipe.incr(full_key)
		pipe.expire(full_key, window + 5, nx=True)
		count, _ = pipe.execute()
		return int(count)

	def _log_limited(self, limit: _Limit, ident: str, tenant: Tenant | None) -> None:
		self.logger.info(
			"request refused: %s rate limit exceeded",
			limit.setting,
			extra={"subject": ident, "tenant_id": str(tenant.pk) if tenant is not None else None},
		)

	def _log_cache_unavailable(self, key: str, exc: Exception) -> None:
		self.logger.warning(
			"rate limit not enforced: the cache is unavailable (%s)",
			type(exc).__name__,
			extra={"throttle_key": key.rsplit(":", 1)[0]},
		)


_limiter = _Limiter()


_PER_TOKEN = _Limit("token", "API_RATE_PER_TOKEN", "per API token")
_PER_USER = _Limit("token", "API_RATE_PER_TOKEN", "per signed-in user")
_PER_TENANT = _Limit("tenant", "API_RATE_PER_TENANT", "per organization")


def _caller_check(*, user: Any, token: Any, tenant: Tenant | None) -> RateLimited | None:
	if isinstance(token, ApiToken):
		return _limiter.check(_PER_TOKEN, f"t{token.pk}", tenant=tenant)
	if isinstance(user, User) and user.is_authenticated:
		return _limiter.check(_PER_USER, f"u{user.pk}", tenant=tenant)
	return None


def _tenant_check(tenant: Tenant | None) -> RateLimited | None:
	return _limiter.check(_PER_TENANT, str(tenant.pk), tenant=tenant) if tenant is not None else None


def rate_limit_check(
	*, user: User | None, token: ApiToken | None, tenant: Tenant | None
) -> RateLimited | None:
	"""Count one request against the caller's and the tenant's limits; the limit exceeded, if any.

	The caller is the API token when there is one, else the signed-in user; anonymous
	requests are not counted (the token endpoint has its own sign-in lockout).
	"""
	return _caller_check(user=user, token=token, tenant=tenant) or _tenant_check(tenant)


def graphql_throttle_response(request: HttpRequest, *, token: ApiToken | None = None) -> JsonResponse | None:
	"""For the GraphQL view, after authentication: a 429 response when a limit is exceeded, else None.

	Counts the request against the same limits as REST (the counters are shared). Pass the
	API token when the request used one; session requests are counted per user.
	"""
	limited = rate_limit_check(
		user=getattr(request, "user", None), token=token, tenant=getattr(request, "tenant", None)
	)
	if limited is None:
		return None
	response = JsonResponse(
		{"errors": [{"message": str(limited.detail), "extensions": {"code": "RATE_LIMITED"}}]}, status=429
	)
	response["Retry-After"] = str(limited.wait)
	return response


class _RateThrottle(BaseThrottle):
	"""Refuses by raising :class:`RateLimited`, so the 429's detail can say which limit was hit."""

	def allow_request(self, request: Request, view: APIView) -> bool:
		limited = self.limited(request, getattr(request._request, "tenant", None))
		if limited is not None:
			raise limited
		return True

	def limited(self, request: Request, tenant: Tenant | None) -> RateLimited | None:
		raise NotImplementedError


class TokenRateThrottle(_RateThrottle):
	"""API_RATE_PER_TOKEN: requests per API token, or per user for browser sessions."""

	def limited(self, request: Request, tenant: Tenant | None) -> RateLimited | None:
		return _caller_check(user=request.user, token=request.auth, tenant=tenant)


class TenantRateThrottle(_RateThrottle):
	"""API_RATE_PER_TENANT: requests per tenant, all its tokens and users together."""

	def limited(self, request: Request, tenant: Tenant | None) -> RateLimited | None:
		return _tenant_check(tenant)
