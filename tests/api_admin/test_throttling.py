"""Rate limits per API token (or signed-in user) and per tenant, for REST and GraphQL."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client, RequestFactory
from rest_framework.test import APIClient

from config.env import ConfigError, load_env, parse_rate
from tests.api_admin.conftest import PROBLEM
from workflows.api import throttles
from workflows.api.throttles import graphql_throttle_response, rate_limit_check
from workflows.models import ApiToken, Membership, Tenant, User
from workflows.roles import Role

pytestmark = pytest.mark.django_db

# A window start, and 17.2 seconds into it: a minute's window then ends in 43 seconds.
WINDOW_START = 1_800_000_000 - 1_800_000_000 % 86_400


@pytest.fixture
def rates(settings: Any) -> Callable[..., None]:
	"""Set the per-token and per-tenant rates for this test (read on every request)."""

	def set_rates(*, token: str = "1000/minute", tenant: str = "1000/minute") -> None:
		settings.REST_FRAMEWORK = {
			**settings.REST_FRAMEWORK,
			"DEFAULT_THROTTLE_RATES": {"login": "10/min", "token": token, "tenant": tenant},
		}

	return set_rates


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
	"""The limiter's clock, 17.2 s into a minute; move it by changing ``clock[0]``."""
	now = [WINDOW_START + 17.2]
	monkeypatch.setattr(throttles._limiter, "clock", lambda: now[0])
	return now


def refused(response: Any) -> dict[str, Any]:
	assert response.status_code == 429, response.content
	assert response["Content-Type"] == PROBLEM
	return response.json()


def test_a_token_over_its_rate_gets_429_with_retry_after(
	tenant: Tenant,
	owner: User,
	token_client: Callable[[User, Tenant], APIClient],
	rates: Callable[..., None],
	clock: list[float],
) -> None:
	rates(token="3/minute")
	client, other_token = token_client(owner, tenant), token_client(owner, tenant)

	allowed = [client.get("/api/v1/me/").status_code for _ in range(3)]
	over = client.get("/api/v1/me/")
	same_user_other_token = other_token.get("/api/v1/me/")
	clock[0] += 60
	next_window = client.get("/api/v1/me/")

	assert allowed == [200, 200, 200]
	body = refused(over)
	assert over["Retry-After"] == "43"
	assert "at most 3 requests per minute per API token (API_RATE_PER_TOKEN)" in body["detail"]
	assert "Retry in 43 seconds" in body["detail"]
	assert body["type"].endswith("/throttled")
	assert same_user_other_token.status_code == 200
	assert next_window.status_code == 200


def test_the_tenant_rate_counts_every_caller_of_the_tenant(
	tenant: Tenant,
	owner: User,
	member_factory: Callable[..., User],
	tenant_factory: Callable[..., Tenant],
	token_client: Callable[[User, Tenant], APIClient],
	rates: Callable[..., None],
	clock: list[float],
) -> None:
	rates(tenant="4/hour")
	first, second = token_client(owner, tenant), token_client(member_factory(tenant, Role.VIEWER), tenant)
	other = tenant_factory()
	elsewhere = token_client(Membership.objects.for_tenant(other).get().user, other)

	allowed = [c.get("/api/v1/me/").status_code for c in (first, second, first, second)]
	over = second.get("/api/v1/tenant/")

	assert allowed == [200] * 4
	body = refused(over)
	assert "at most 4 requests per hour per organization (API_RATE_PER_TENANT)" in body["detail"]
	assert over["Retry-After"] == str(3600 - 17)
	assert elsewhere.get("/api/v1/me/").status_code == 200


def test_requests_refused_by_a_tokens_limit_do_not_use_up_the_tenants(
	tenant: Tenant,
	owner: User,
	member_factory: Callable[..., User],
	token_client: Callable[[User, Tenant], APIClient],
	rates: Callable[..., None],
	clock: list[float],
) -> None:
	rates(token="1/minute", tenant="3/minute")
	busy, other = token_client(owner, tenant), token_client(member_factory(tenant, Role.VIEWER), tenant)

	busy_answers = [busy.get("/api/v1/me/").status_code for _ in range(4)]
	other_answers = [other.get("/api/v1/me/").status_code for _ in range(1)]
	third = token_client(owner, tenant).get("/api/v1/me/")
	over = token_client(owner, tenant).get("/api/v1/me/")

	assert busy_answers == [200, 429, 429, 429]
	assert other_answers == [200]
	assert third.status_code == 200
	assert "per organization (API_RATE_PER_TENANT)" in refused(over)["detail"]


def test_browser_sessions_are_counted_per_user(
	tenant: Tenant, owner: User, client: Client, rates: Callable[..., None], clock: list[float]
) -> None:
	rates(token="2/second")
	client.force_login(owner)

	allowed = [client.get("/api/v1/me/").status_code for _ in range(2)]
	over = client.get("/api/v1/me/")

	assert allowed == [200, 200]
	body = refused(over)
	assert "per second per signed-in user (API_RATE_PER_TOKEN)" in body["detail"]
	assert "Retry in 1 second;" in body["detail"]
	assert over["Retry-After"] == "1"


def test_off_turns_a_limit_off(
	tenant: Tenant,
	owner: User,
	token_client: Callable[[User, Tenant], APIClient],
	rates: Callable[..., None],
) -> None:
	rates(token="off", tenant="off")
	client = token_client(owner, tenant)

	assert {client.get("/api/v1/me/").status_code for _ in range(15)} == {200}


def test_the_default_rates_are_generous() -> None:
	token = parse_rate(django_settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["token"])
	tenant = parse_rate(django_settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["tenant"])

	assert token == (1200, 60)
	assert tenant == (6000, 60)


def test_the_sign_in_lockout_keeps_its_own_answer(
	tenant: Tenant, owner: User, settings: Any, rates: Callable[..., None]
) -> None:
	settings.LOGIN_MAX_FAILURES = 1
	rates(token="1/minute", tenant="1/minute")
	anonymous = APIClient()
	attempt = {"username": owner.username, "password": "wrong", "tenant": tenant.slug}

	first = anonymous.post("/api/v1/auth/token/", attempt, format="json")
	locked = anonymous.post("/api/v1/auth/token/", attempt, format="json")

	assert first.status_code == 401
	assert refused(locked)["detail"].startswith("Too many requests; retry in")
	assert locked["Retry-After"] == str(settings.LOGIN_LOCKOUT_SECONDS)


class _BrokenCache:
	def add(self, *args: Any, **kwargs: Any) -> bool:
		raise ConnectionError("redis is down")


def _unreachable_redis() -> Any:
	from django.core.cache.backends.redis import RedisCache

	return RedisCache("redis://127.0.0.1:1/0", {"OPTIONS": {"socket_connect_timeout": 0.2}})


@pytest.mark.parametrize("backend", [_BrokenCache, _unreachable_redis], ids=["any cache", "redis"])
def test_an_unreachable_cache_lets_requests_through(
	tenant: Tenant,
	owner: User,
	token_client: Callable[[User, Tenant], APIClient],
	rates: Callable[..., None],
	monkeypatch: pytest.MonkeyPatch,
	caplog: pytest.LogCaptureFixture,
	backend: Callable[[], Any],
) -> None:
	rates(token="1/minute", tenant="1/minute")
	client = token_client(owner, tenant)
	unreachable = backend()
	monkeypatch.setattr(throttles, "_backend", lambda: unreachable)

	with caplog.at_level(logging.WARNING, logger="apg.api.throttle"):
		answered = [client.get("/api/v1/me/").status_code for _ in range(3)]

	assert answered == [200, 200, 200]
	assert "the cache is unavailable (ConnectionError)" in caplog.text


class _EvictingCache:
	"""A window's key disappears between add() and incr() once."""

	def __init__(self) -> None:
		self.adds = 0

	def add(self, *args: Any, **kwargs: Any) -> bool:
		self.adds += 1
		return self.adds > 1

	def incr(self, key: str) -> int:
		raise ValueError(key)


def test_a_counter_evicted_mid_request_starts_again(monkeypatch: pytest.MonkeyPatch) -> None:
	evicting = _EvictingCache()
	monkeypatch.setattr(throttles, "_backend", lambda: evicting)

	assert throttles._limiter.hit("rl:token:t1:0", 60) == 1


# --- GraphQL -------------------------------------------------------------------------------------


def test_graphql_shares_the_rest_counters(
	tenant: Tenant,
	owner: User,
	token_client: Callable[[User, Tenant], APIClient],
	rates: Callable[..., None],
	clock: list[float],
) -> None:
	rates(token="2/minute")
	rest = token_client(owner, tenant)
	token = ApiToken.objects.for_tenant(tenant).get(user=owner)
	request = RequestFactory().post("/graphql")
	request.user = owner
	request.tenant = tenant  # pyright: ignore[reportAttributeAccessIssue]

	assert rest.get("/api/v1/me/").status_code == 200
	assert graphql_throttle_response(request, token=token) is None
	over = graphql_throttle_response(request, token=token)

	assert over is not None
	assert over.status_code == 429
	assert over["Retry-After"] == "43"
	error = json.loads(over.content)["errors"][0]
	assert "per API token (API_RATE_PER_TOKEN)" in error["message"]
	assert error["extensions"] == {"code": "RATE_LIMITED"}
	assert rest.get("/api/v1/me/").status_code == 429


def test_graphql_session_requests_count_per_user_and_anonymous_ones_not_at_all(
	tenant: Tenant, owner: User, rates: Callable[..., None], clock: list[float]
) -> None:
	rates(token="1/minute")
	request = RequestFactory().post("/graphql")
	request.user = owner
	request.tenant = tenant  # pyright: ignore[reportAttributeAccessIssue]

	first, second = graphql_throttle_response(request), graphql_throttle_response(request)

	assert first is None
	assert second is not None
	assert "per signed-in user" in second.content.decode()
	assert rate_limit_check(user=None, token=None, tenant=None) is None


# --- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize(
	("value", "parsed"),
	[
		("100/s", (100, 1)),
		("5 / Hours", (5, 3600)),
		("1200/minute", (1200, 60)),
		("9/day", (9, 86400)),
		("OFF", None),
	],
)
def test_rates_are_written_per_period(value: str, parsed: tuple[int, int] | None) -> None:
	assert parse_rate(value) == parsed


@pytest.mark.parametrize(
	("name", "value", "says"),
	[
		("API_RATE_PER_TOKEN", "lots", "e.g. '1200/minute'"),
		("API_RATE_PER_TENANT", "0/minute", "N >= 1"),
		("API_MAX_BODY_BYTES", "10", "from 1024"),
		("API_BULK_MAX_ITEMS", "0", "from 1 to 100000"),
	],
)
def test_bad_limit_settings_stop_the_start_naming_the_variable(name: str, value: str, says: str) -> None:
	with pytest.raises(ConfigError) as error:
		load_env({name: value})

	assert str(error.value).startswith(f"{name}: expected")
	assert says in str(error.value)


# --- against real Redis --------------------------------------------------------------------------


@pytest.mark.usefixtures("redis_configured")
def test_counters_live_in_redis_and_expire_after_their_window(
	tenant: Tenant,
	owner: User,
	token_client: Callable[[User, Tenant], APIClient],
	rates: Callable[..., None],
) -> None:
	import redis

	rates(token="50/minute")
	client = token_client(owner, tenant)
	token = ApiToken.objects.for_tenant(tenant).get(user=owner)

	for _ in range(3):
		client.get("/api/v1/me/")

	server = redis.Redis.from_url(django_settings.REDIS_URL)
	for counted in (f"token:t{token.pk}", f"tenant:{tenant.pk}"):
		keys = server.keys(f"*rl:{counted}:*")
		assert len(keys) == 1
		assert int(server.get(keys[0]) or 0) == 3
		assert 0 < server.ttl(keys[0]) <= 65


@pytest.mark.usefixtures("redis_configured")
def test_concurrent_requests_are_each_counted_once() -> None:
	key = f"rl:token:concurrency-{threading.get_ident()}:{WINDOW_START}"
	counts: list[int | None] = []
	lock = threading.Lock()
	start = threading.Barrier(24)

	def request() -> None:
		start.wait()
		for _ in range(5):
			count = throttles._limiter.hit(key, 60)
			with lock:
				counts.append(count)

	workers = [threading.Thread(target=request) for _ in range(24)]
	for worker in workers:
		worker.start()
	for worker in workers:
		worker.join()

	assert sorted(c for c in counts if c is not None) == list(range(1, 121))


@pytest.mark.usefixtures("redis_configured")
def test_both_limits_are_counted_in_one_round_trip_to_redis(
	tenant: Tenant,
	owner: User,
	token_client: Callable[[User, Tenant], APIClient],
	rates: Callable[..., None],
	monkeypatch: pytest.MonkeyPatch,
) -> None:
	import redis

	rates(token="50/minute", tenant="50/minute")
	client = token_client(owner, tenant)
	client.get("/api/v1/me/")
	sent: list[str] = []
	original = redis.Redis.execute_command

	def recording(self: Any, *args: Any, **options: Any) -> Any:
		sent.append(str(args[0]))
		return original(self, *args, **options)

	monkeypatch.setattr(redis.Redis, "execute_command", recording)

	assert client.get("/api/v1/me/").status_code == 200
	assert sent == ["EVALSHA"]


@pytest.mark.usefixtures("redis_configured")
def test_the_counting_script_is_sent_again_when_redis_lost_it() -> None:
	import redis

	key = f"rl:token:script-{threading.get_ident()}:{WINDOW_START}"
	redis.Redis.from_url(django_settings.REDIS_URL).script_flush()

	assert throttles._limiter.hit_all([(key, 60, 10), (f"{key}:tenant", 60, 10)]) == [1, 1]
	assert throttles._limiter.hit_all([(key, 60, 1), (f"{key}:tenant", 60, 10)]) == [2]
