"""The small built-in connectors: noop, fail, delay, compute and transform."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from connectors.builtin.compute import fibonacci, naive_fibonacci
from connectors.builtin.delay import sleep
from connectors.builtin.fail import fail
from connectors.builtin.noop import noop
from connectors.builtin.transform import jq
from connectors.errors import ActionCancelled, ActionError, PermanentError, RetryableError
from connectors.sdk import Action, ActionContext, execute, execute_sync

MakeCtx = Callable[..., ActionContext]


async def run(action: Action[Any, Any], ctx: ActionContext, **params: Any) -> dict[str, Any]:
	return await execute(action, params=params, ctx=ctx)


# --- noop -----------------------------------------------------------------------------------


async def test_noop_returns_an_empty_object(make_ctx: MakeCtx) -> None:
	assert await run(noop, make_ctx()) == {}


async def test_noop_echoes_a_value(make_ctx: MakeCtx) -> None:
	assert await run(noop, make_ctx(), value={"a": [1, 2.5, None, "x"]}) == {
		"value": {"a": [1, 2.5, None, "x"]}
	}


def test_noop_is_cheap_enough_for_benchmarks(make_ctx: MakeCtx) -> None:
	ctx = make_ctx()
	execute_sync(noop, params={}, ctx=ctx)
	started = time.perf_counter()

	for _ in range(200):
		execute_sync(noop, params={}, ctx=ctx)

	assert (time.perf_counter() - started) / 200 < 0.002  # ~25 µs here; generous for slow CI


# --- fail -----------------------------------------------------------------------------------


async def test_fail_raises_a_permanent_error_by_default(make_ctx: MakeCtx) -> None:
	with pytest.raises(PermanentError) as caught:
		await run(fail, make_ctx())

	assert (caught.value.code, caught.value.message) == ("demo_failure", "this step failed on purpose")


async def test_fail_raises_the_error_asked_for(make_ctx: MakeCtx) -> None:
	with pytest.raises(RetryableError) as caught:
		await run(
			fail, make_ctx(), code="rate_limited", message="slow down", retryable=True, details={"n": 1}
		)

	assert caught.value.to_dict() == {
		"type": "RetryableError",
		"code": "rate_limited",
		"message": "slow down",
		"retryable": True,
		"details": {"n": 1},
	}


async def test_fail_refuses_a_malformed_code(make_ctx: MakeCtx) -> None:
	with pytest.raises(PermanentError) as caught:
		await run(fail, make_ctx(), code="has spaces")

	assert caught.value.details["errors"][0]["pointer"] == "/code"


# --- delay ----------------------------------------------------------------------------------


async def test_sleep_pauses_for_the_time_asked(make_ctx: MakeCtx) -> None:
	started = time.monotonic()

	result = await run(sleep, make_ctx(), seconds=0.05)

	assert 0.05 <= time.monotonic() - started < 1
	assert result["slept_seconds"] >= 0.05


async def test_sleep_of_zero_returns_at_once(make_ctx: MakeCtx) -> None:
	assert (await run(sleep, make_ctx(), seconds=0))["slept_seconds"] < 0.05


def test_sleep_ends_early_when_cancelled(make_ctx: MakeCtx) -> None:
	ctx = make_ctx()
	threading.Timer(0.05, ctx.cancel.set, kwargs={"reason": "operator cancelled the run"}).start()
	started = time.monotonic()

	with pytest.raises(ActionCancelled, match="operator cancelled the run"):
		execute_sync(sleep, params={"seconds": 60}, ctx=ctx)

	assert time.monotonic() - started < 1


async def test_sleep_called_directly_also_watches_the_signal(make_ctx: MakeCtx) -> None:
	ctx = make_ctx()
	asyncio.get_running_loop().call_later(0.02, ctx.cancel.set)

	with pytest.raises(ActionCancelled):
		await sleep(ctx, sleep.input(seconds=60))


@pytest.mark.parametrize("seconds", [-1, 301])
async def test_sleep_is_bounded(make_ctx: MakeCtx, seconds: float) -> None:
	with pytest.raises(PermanentError) as caught:
		await run(sleep, make_ctx(), seconds=seconds)

	assert caught.value.details["errors"][0]["pointer"] == "/seconds"


# --- compute --------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "value"), [(0, 0), (1, 1), (2, 1), (10, 55), (20, 6765)])
async def test_fibonacci_computes_the_sequence(make_ctx: MakeCtx, n: int, value: int) -> None:
	assert await run(fibonacci, make_ctx(), n=n) == {"n": n, "value": value}


def test_fibonacci_is_declared_cpu_bound_and_capped() -> None:
	assert fibonacci.cpu_bound
	assert fibonacci.input_schema()["properties"]["n"]["maximum"] == 32
	assert naive_fibonacci(25) == 75025


async def test_fibonacci_refuses_n_above_the_cap(make_ctx: MakeCtx) -> None:
	with pytest.raises(PermanentError):
		await run(fibonacci, make_ctx(), n=33)


async def test_fibonacci_does_not_start_when_cancelled(make_ctx: MakeCtx) -> None:
	ctx = make_ctx()
	ctx.cancel.set()

	with pytest.raises(ActionCancelled):
		await fibonacci(ctx, fibonacci.input(n=30))


# --- transform ------------------------------------------------------------------------------


@pytest.mark.parametrize(
	("expression", "data", "result"),
	[
		(".customer.name", {"customer": {"name": "Ada"}}, "Ada"),
		("${ .items | map(.price) | add }", {"items": [{"price": 2}, {"price": 3.5}]}, 5.5),
		("{total: (.items | length), first: $items[0]}", {"items": ["a", "b"]}, {"total": 2, "first": "a"}),
		("map(. * 2)", [1, 2, 3], [2, 4, 6]),
		("${ ascii_upcase }", "shout", "SHOUT"),
		(". + 1 # a trailing comment", 41, 42),
		(".missing", {}, None),
		("empty", {}, None),
	],
	ids=[
		"path",
		"wrapped",
		"object-construction",
		"array-data",
		"wrapped-scalar",
		"comment",
		"missing",
		"empty",
	],
)
async def test_jq_applies_the_expression_to_the_data(
	make_ctx: MakeCtx, expression: str, data: Any, result: Any
) -> None:
	assert await run(jq, make_ctx(), expression=expression, data=data) == {"result": result}


@pytest.mark.parametrize(
	("expression", "data", "code", "message"),
	[
		(".x | foo", {}, "expression_syntax_error", "foo/0 is not defined"),
		(".x | keys", {"x": None}, "expression_runtime_error", "null (null) has no keys"),
		(".[]", [1, 2], "expression_multiple_values", "produced 2 values"),
		("${ .a", {}, "expression_syntax_error", ""),
	],
	ids=["syntax", "runtime", "multiple-values", "unclosed-wrapper"],
)
async def test_jq_errors_are_permanent_with_the_jq_message(
	make_ctx: MakeCtx, expression: str, data: Any, code: str, message: str
) -> None:
	with pytest.raises(ActionError) as caught:
		await run(jq, make_ctx(), expression=expression, data=data)

	error = caught.value
	assert (error.code, error.retryable) == (code, False)
	assert message in error.message
	assert error.details == {"expression": expression}
