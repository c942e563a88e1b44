"""Shared fixtures: factories for users, tenants and members; API clients; real services.

Tests that need a real service (PostgreSQL, Redis, a redis-server binary) use the
``services`` helpers below: they skip on a machine without the service and fail instead
when REQUIRE_SERVICES=1 (as in CI), so a missing service can never pass silently.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from workflows.context import tenant_scope
from workflows.models import Membership, Tenant, User
from workflows.roles import Role
from workflows.services.tokens import api_token_create

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"
_counter = itertools.count(1)


def pytest_configure(config: pytest.Config) -> None:
	# Parallel workers share one Redis: give each its own cache key space.
	worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
	settings.CACHES["default"]["KEY_PREFIX"] = f"apg-test-{worker}"
	settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
	settings.EMBEDDED_WORKER = False
	if settings.REDIS_URL:
		# Each parallel test process gets its own broker database, so one never takes
		# another's tasks (whose rows live in the other's test database).
		from config.celery import app as celery_app

		index = 1 + int(worker.removeprefix("gw")) if worker.startswith("gw") else 0
		celery_app.conf["broker_url"] = broker_url_for(settings.REDIS_URL, index)


def broker_url_for(redis_url: str, index: int) -> str:
	"""``redis_url`` with the database number moved to a test-process-specific one (8 + index)."""
	from urllib.parse import urlsplit, urlunsplit

	parts = urlsplit(redis_url)
	return urlunsplit(parts._replace(path=f"/{8 + index}"))


def need_service(name: str, available: bool, how: str) -> None:
	"""Skip (or, under REQUIRE_SERVICES=1, fail) when a service is missing."""
	if available:
		return
	message = f"{name} is not available: {how}"
	if REQUIRE_SERVICES:
		pytest.fail(f"REQUIRE_SERVICES=1 but {message}")
	pytest.skip(message)


def port_open(host: str, port: int) -> bool:
	"""Whether something accepts TCP connections there."""
	try:
		with socket.create_connection((host, port), timeout=0.5):
			return True
	except OSError:
		return False


@pytest.fixture
def redis_server_binary() -> str:
	"""Path of redis-server, for tests that start and stop their own Redis."""
	path = shutil.which("redis-server")
	need_service("redis-server", path is not None, "install Redis (apt-get install redis-server)")
	assert path is not None
	return path


@pytest.fixture
def postgres_only() -> None:
	"""The test exercises PostgreSQL-only behaviour (triggers, row locks)."""
	need_service(
		"PostgreSQL",
		settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql",
		"set DATABASE_URL=postgres://... to run PostgreSQL tests",
	)


@pytest.fixture
def redis_configured() -> None:
	"""The test needs REDIS_URL configured (Redis cache and channel layer)."""
	need_service("Redis", bool(settings.REDIS_URL), "set REDIS_URL=redis://127.0.0.1:6379/0")


@pytest.fixture
def user_factory(db: Any) -> Callable[..., User]:
	"""Make a user: ``user_factory(username=..., password=...)``."""

	def make(**overrides: Any) -> User:
		n = next(_counter)
		password = overrides.pop("password", "correct horse battery staple")
		values: dict[str, Any] = {"username": f"user{n}", "email": f"user{n}@example.com"} | overrides
		return User.objects.create_user(password=password, **values)

	return make


@pytest.fixture
def tenant_factory(db: Any, user_factory: Callable[..., User]) -> Callable[..., Tenant]:
	"""Make a tenant with an owner: ``tenant_factory(slug=..., owner=...)``."""

	def make(**overrides: Any) -> Tenant:
		n = next(_counter)
		owner = overrides.pop("owner", None) or user_factory()
		tenant = Tenant.objects.create(
			slug=overrides.pop("slug", f"tenant-{n}"), name=overrides.pop("name", f"Tenant {n}")
		)
		Membership.objects.for_tenant(tenant).create(tenant=tenant, user=owner, role=Role.OWNER)
		return tenant

	return make


@pytest.fixture
def member_factory(user_factory: Callable[..., User]) -> Callable[..., User]:
	"""Make a user who is a member of ``tenant`` with ``role``."""

	def make(tenant: Tenant, role: Role | str = Role.VIEWER, **overrides: Any) -> User:
		user = user_factory(**overrides)
		Membership.objects.for_tenant(tenant).create(tenant=tenant, user=user, role=Role(role))
		return user

	return make


@pytest.fixture
def tenant(tenant_factory: Callable[..., Tenant]) -> Tenant:
	"""One tenant."""
	return tenant_factory()


@pytest.fixture
def owner(tenant: Tenant) -> User:
	"""The owner of ``tenant``."""
	return Membership.objects.for_tenant(tenant).get(role=Role.OWNER).user


@pytest.fixture
def token_client() -> Callable[[User, Tenant], APIClient]:
	"""An API client authenticated by a fresh token of ``user`` in ``tenant``."""

	def make(user: User, tenant: Tenant) -> APIClient:
		with tenant_scope(tenant):
			issued = api_token_create(actor=user, tenant=tenant, name="test")
		client = APIClient()
		client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.raw}")
		return client

	return make


@pytest.fixture
def scoped(tenant: Tenant) -> Iterator[Tenant]:
	"""Run the test body with ``tenant`` bound."""
	with tenant_scope(tenant):
		yield tenant


@pytest.fixture(scope="session", autouse=True)
def _close_connection_pools(django_db_setup: Any, django_db_blocker: Any) -> Iterator[None]:
	"""Close pooled connections (worker threads leave some) before the test database is dropped."""
	yield
	from django.db import connections

	with django_db_blocker.unblock():
		for connection in connections.all():
			close_pool = getattr(connection, "close_pool", None)
			if close_pool is not None:
				close_pool()
			connection.close()
