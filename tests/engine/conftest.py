"""Fixtures for engine tests that use the database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest

from config.celery import app as celery_app
from workflows.engine import runtime
from workflows.models import Tenant, User, Workflow
from workflows.services.definitions import workflow_create, workflow_publish


@pytest.fixture
def eager(settings: Any) -> Iterator[None]:
	"""Celery tasks run inline (unit tests only; integration tests use a real worker)."""
	celery_app.conf.task_always_eager = True
	celery_app.conf.task_eager_propagates = True
	runtime._engines.clear()
	try:
		yield
	finally:
		celery_app.conf.task_always_eager = False
		celery_app.conf.task_eager_propagates = False


@pytest.fixture
def publish(tenant: Tenant, owner: User) -> Callable[..., Workflow]:
	"""Create and publish a workflow from a definition dict."""

	def make(doc: dict[str, Any], name: str = "Flow", **kwargs: Any) -> Workflow:
		workflow = workflow_create(actor=owner, tenant=tenant, name=name, definition=doc, **kwargs)
		workflow_publish(actor=owner, workflow=workflow)
		return workflow

	return make


@pytest.fixture
def settle(
	django_capture_on_commit_callbacks: Callable[..., AbstractContextManager[Any]],
) -> Callable[..., Any]:
	"""Run a callable with on-commit side effects executed (and the eager tasks they send)."""

	def run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
		with django_capture_on_commit_callbacks(execute=True):
			return fn(*args, **kwargs)

	return run
