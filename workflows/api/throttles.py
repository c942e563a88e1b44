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

import hashlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.cache import BaseCache, caches
from django.core.cache.backends.redis import RedisCache
from django.http import HttpRequest, JsonResponse
from redis.exceptions import NoScriptError
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

	def __init__(self, *, wait: int, detail: str, scope: str = "") -> None:
		exceptions.APIException.__init__(self, detail, "throttled")
		self.wait = wait
		self.scope = scope  # the limit exceeded: "token" or "tenant"


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
		return self.check_all([(limit, ident)], tenant=tenant)

	def check_all(self, limits: Sequence[tuple[_Limit, str]], *, tenant: Tenant | None) -> RateLimited | None:
		"""Count one request against each of ``limits`` in turn; the refusal of the first it exceeds.

		A request refused by one limit is not counted against the limits after it (a token over
		its own limit does not use up its tenant's). With Redis, one round trip for them all.
		"""
		now = self.clock()
		steps: list[tuple[_Limit, str, int, int, int]] = []
		for limit, ident in limits:
			rate = _rate(limit.scope)
			if rate is not None:
				allowed, window = rate
				steps.append((limit, ident, allowed, window, int(now // window) * window))
		if not steps:
			return None
		counts = self.hit_all(
			[
				(f"rl:{limit.scope}:{ident}:{start}", window, allowed)
				for limit, ident, allowed, window, start in steps
			]
		)
		for (limit, ident, allowed, window, start), count in zip(steps, counts, strict=False):
			if count is not None and count > allowed:
				return self._refusal(limit, ident, allowed, window, start + window - now, tenant)
		return None

	def _refusal(
		self, limit: _Limit, ident: str, allowed: int, window: int, left: float, tenant: Tenant | None
	) -> RateLimited:
		wait = max(1, math.ceil(left))
		self._log_limited(limit, ident, tenant)
		period = _PERIOD_NAMES[window]
		return RateLimited(
			wait=wait,
			scope=limit.scope,
			detail=(
				f"Rate limit exceeded: at most {allowed} requests per {period} {limit.subject} "
				f"({limit.setting}). Retry in {wait} second{'' if wait == 1 else 's'}; spread the "
				"requests out or use the bulk endpoints."
			),
		)

	def hit_all(self, counters: Sequence[tuple[str, int, int]]) -> list[int | None]:
		"""Count one request in each ``(key, window, allowed)`` counter in turn, stopping after the
		first count over its ``allowed``; the counts made (None for a counter the cache could not
		count: the request is let through, logged)."""
		backend = _backend()
		if isinstance(backend, RedisCache):
			try:
				return self._hit_all_redis(backend, counters)
			except Exception as exc:  # any cache failure lets the request through, logged
				self._log_cache_unavailable(counters[0][0], exc)
				return [None] * len(counters)
		counts: list[int | None] = []
		for key, window, allowed in counters:
			count = self.hit(key, window)
			counts.append(count)
			if count is not None and count > allowed:
				break
		return counts

	def _hit_all_redis(
		self, redis_cache: RedisCache, counters: Sequence[tuple[str, int, int]]
	) -> list[int | None]:
		"""The counters in one round trip: a script that does, per counter, what ``_hit_redis`` does."""
		keys = [redis_cache.make_and_validate_key(key) for key, _, _ in counters]
		client = redis_cache._cache.get_client(keys[0], write=True)
		args = [value for _, window, allowed in counters for value in (allowed, window + 5)]
		return [int(count) for count in _run_count_script(client, keys, args)]

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


# INCR each counter (a new key starts at 1) and EXPIRE NX it (only a new key gets a TTL), as
# _hit_redis does, stopping after the first count over its limit; ARGV holds (limit, TTL) pairs.
# Redis runs a script atomically, and the counters stay plain integers Django's cache can read.
_COUNT_SCRIPT = """
local counts = {}
for i, key in ipairs(KEYS) do
	local count = redis.call('INCR', key)
	redis.call('EXPIRE', key, ARGV[2 * i], 'NX')
	counts[i] = count
	if count > tonumber(ARGV[2 * i - 1]) then
		break
	end
end
return counts
"""
_COUNT_SCRIPT_SHA = hashlib.sha1(_COUNT_SCRIPT.encode(), usedforsecurity=False).hexdigest()


def _run_count_script(client: Any, keys: list[str], args: list[int]) -> list[Any]:
	"""Run the counting script by its digest, sending it whole when Redis does not have it yet."""
	try:
		return client.evalsha(_COUNT_SCRIPT_SHA, len(keys), *keys, *args)
	except NoScriptError:
		return client.eval(_COUNT_SCRIPT, len(keys), *keys, *args)


_limiter = _Limiter()


_PER_TOKEN = _Limit("token", "API_RATE_PER_TOKEN", "per API token")
_PER_USER = _Limit("token", "API_RATE_PER_TOKEN", "per signed-in user")
_PER_TENANT = _Limit("tenant", "API_RATE_PER_TENANT", "per organization")


def _caller_limit(*, user: Any, token: Any) -> tuple[_Limit, str] | None:
	if isinstance(token, ApiToken):
		return _PER_TOKEN, f"t{token.pk}"
	if isinstance(user, User) and user.is_authenticated:
		return _PER_USER, f"u{user.pk}"
	return None


def rate_limit_check(
	*, user: User | None, token: ApiToken | None, tenant: Tenant | None
) -> RateLimited | None:
	"""Count one request against the caller's and the tenant's limits; the limit exceeded, if any.

	The caller is the API token when there is one, else the signed-in user; anonymous
	requests are not counted (the token endpoint has its own sign-in lockout). The caller's
	limit is counted first, and a request it refuses is not counted against the tenant's.
	"""
	limits: list[tuple[_Limit, str]] = []
	caller = _caller_limit(user=user, token=token)
	if caller is not None:
		limits.append(caller)
	if tenant is not None:
		limits.append((_PER_TENANT, str(tenant.pk)))
	return _limiter.check_all(limits, tenant=tenant)


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


_NOT_COUNTED = object()


class _RateThrottle(BaseThrottle):
	"""Refuses by raising :class:`RateLimited`, so the 429's detail can say which limit was hit.

	The two throttles share one count per request (:func:`rate_limit_check`: one Redis round
	trip for both limits, made by whichever runs first); each refuses for its own limit.
	"""

	scope = ""

	def allow_request(self, request: Request, view: APIView) -> bool:
		http_request = request._request
		limited = getattr(http_request, "_apg_rate_limited", _NOT_COUNTED)
		if limited is _NOT_COUNTED:
			limited = rate_limit_check(
				user=request.user if isinstance(request.user, User) else None,
				token=request.auth if isinstance(request.auth, ApiToken) else None,
				tenant=getattr(http_request, "tenant", None),
			)
			http_request._apg_rate_limited = limited  # pyright: ignore[reportAttributeAccessIssue]
		if isinstance(limited, RateLimited) and limited.scope == self.scope:
			raise limited
		return True


class TokenRateThrottle(_RateThrottle):
	"""API_RATE_PER_TOKEN: requests per API token, or per user for browser sessions."""

	scope = "token"


class TenantRateThrottle(_RateThrottle):
	"""API_RATE_PER_TENANT: requests per tenant, all its tokens and users together."""

	scope = "tenant"
