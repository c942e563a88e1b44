"""Fixtures for the expression engine tests: a standard context and limits that reset."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from multiprocessing import resource_tracker
from typing import Any

import pytest

from workflows.expressions import Limits, build_context, configure, current_limits, shutdown


@pytest.fixture(scope="session", autouse=True)
def _stop_sandboxes_when_done() -> Iterator[None]:
	"""Stop the sandbox processes before pytest finishes, so nothing they write at exit
	(coverage data, under pytest-cov) outlives the session."""
	yield
	shutdown()
	# Starting a spawn process also starts multiprocessing's resource tracker; left running it
	# exits after pytest-cov has combined coverage data and leaves a stray .coverage.* file.
	stop = getattr(resource_tracker._resource_tracker, "_stop", None)
	if stop is not None:
		stop()


@pytest.fixture
def context() -> dict[str, Any]:
	"""A context as the engine builds it for a node after a 'fetch' step succeeded."""
	return build_context(
		input={"customer": {"name": "Ada", "tier": "gold"}, "amount": 42.5, "items": [1, 2, 3]},
		steps={
			"fetch": {"output": {"body": {"id": 7, "tags": ["a", "b"]}, "code": 200}, "status": "succeeded"}
		},
		run={"id": "run-1", "attempt": 1},
		secrets_names=["api_token"],
	)


@pytest.fixture
def limits() -> Iterator[Callable[..., Limits]]:
	"""``configure`` for one test; the limits in force before the test come back after it."""
	before = current_limits()
	yield configure
	configure(before)
