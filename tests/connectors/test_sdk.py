"""The SDK: declaring actions, running them through execute(), and how failures are classified."""

from __future__ import annotations

import asyncio
import datetime
import logging
import pickle
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, cast

import pytest
from pydantic import BaseModel, ConfigDict, Field

from connectors.errors import ActionCancelled, ActionError, ActionTimeout, PermanentError, RetryableError
from connectors.network import NetworkPolicy
from connectors.sdk import (
	Action,
	ActionContext,
	CancelSignal,
	Connector,
	execute,
	execute_sync,
	make_idempotency_key,
)

MakeCtx = Callable[..., ActionContext]


class Item(BaseModel):
	model_config = ConfigDict(extra="forbid")

	sku: str = Field(description="Stock keeping unit.")
	qty: int = Field(ge=1, description="How many.")


class OrderInput(BaseModel):
	model_config = ConfigDict(extra="forbid")

	customer: str = Field(description="Customer id.")
	items: list[Item] = Field(default_factory=list, description="Order lines.")
	notes: dict[str, int] = Field(default_factory=dict, description="Counters by name.")


class OrderOutput(BaseModel):
	total: int = Field(description="Items ordered.")
	at: datetime.datetime = Field(description="When.")


class Empty(BaseModel):
	pass


demo = Connector("demo", "Demo", "Actions for the SDK tests.", "2.1.0")
EPOCH = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
finished: list[str] = []


@demo.action(
	name="order", title="Order", description="Totals an order.", input=OrderInput, output=OrderOutput
)
async def order(ctx: ActionContext, params: OrderInput) -> OrderOutput:
	return OrderOutput(total=sum(item.qty for item in params.items), at=EPOCH)


@demo.action(
	name="as_dict", title="As dict", description="Returns a dict.", input=OrderInput, output=OrderOutput
)
async def as_dict(ctx: ActionContext, params: OrderInput) -> dict[str, Any]:
	return {"total": len(params.items), "at": "2026-01-02T03:04:05Z"}


@demo.action(
	name="wrong", title="Wrong", description="Returns a bad result.", input=Empty, output=OrderOutput
)
async def wrong(ctx: ActionContext, params: Empty) -> dict[str, Any]:
	return {"total": "many"}


@demo.action(name="hang", title="Hang", description="Waits a long time.", input=Empty, output=Empty)
async def hang(ctx: ActionContext, params: Empty) -> Empty:
	try:
		await asyncio.sleep(30)
	finally:
		finished.append(ctx.idempotency_key)
	return Empty()


TO_RAISE: dict[str, Exception] = {}
"""What ``demo.crash`` raises, by the idempotency key of the step."""


@demo.action(
	name="crash", title="Crash", description="Raises whatever it is told.", input=Empty, output=Empty
)
async def crash(ctx: ActionContext, params: Empty) -> Empty:
	raise TO_RAISE[ctx.idempotency_key]


def crashing_ctx(make_ctx: MakeCtx, raised: Exception, **overrides: Any) -> ActionContext:
	ctx = make_ctx(idempotency_key=str(uuid.uuid4()), **overrides)
	TO_RAISE[ctx.idempotency_key] = raised
	return ctx


class GatewayExploded(Exception):
	pass


def run(action: Action[Any, Any], ctx: ActionContext, **params: Any) -> Any:
	return asyncio.run(execute(action, params=params, ctx=ctx))


# --- declaring ------------------------------------------------------------------------------


def test_a_connector_lists_its_actions_with_metadata_and_schemas() -> None:
	description = demo.describe()

	assert (description["name"], description["version"]) == ("demo", "2.1.0")
	assert [action["name"] for action in description["actions"]] == [
		"as_dict",
		"crash",
		"hang",
		"order",
		"wrong",
	]
	entry = next(action for action in description["actions"] if action["name"] == "order")
	assert entry["key"] == "demo.order"
	assert entry["input_schema"]["properties"]["customer"]["description"] == "Customer id."
	assert entry["input_schema"]["additionalProperties"] is False
	assert entry["output_schema"]["properties"]["at"]["format"] == "date-time"
	assert (entry["cpu_bound"], entry["idempotent"]) == (False, False)


def test_schemas_are_fresh_copies() -> None:
	order.input_schema()["properties"].clear()

	assert "customer" in order.input_schema()["properties"]


def test_actions_are_found_by_name_and_read_only_in_the_mapping() -> None:
	assert demo.get_action("order") is order
	assert demo.get_action("missing") is None
	assert demo.actions["order"] is order
	with pytest.raises(TypeError):
		cast(Any, demo.actions)["x"] = order
	assert "order" in repr(demo)


async def test_an_action_can_be_called_directly(make_ctx: MakeCtx) -> None:
	result = await order(make_ctx(), OrderInput(customer="c", items=[Item(sku="a", qty=2)]))

	assert result == OrderOutput(total=2, at=EPOCH)


@pytest.mark.parametrize("name", ["", "Http", "9lives", "has-dash", "x" * 64])
def test_malformed_names_are_refused(name: str) -> None:
	with pytest.raises(ValueError, match="lower-case"):
		Connector(name, "t", "d", "1.0.0")
	with pytest.raises(ValueError, match="lower-case"):
		demo.action(name=name, title="t", description="d", input=Empty, output=Empty)


def test_a_version_is_required() -> None:
	with pytest.raises(ValueError, match="version"):
		Connector("versionless", "t", "d", " ")


def test_an_action_name_is_taken_once_per_connector() -> None:
	connector = Connector("once", "Once", "d")

	@connector.action(name="go", title="Go", description="d", input=Empty, output=Empty)
	async def go(ctx: ActionContext, params: Empty) -> Empty:
		return params

	with pytest.raises(ValueError, match="already has an action named 'go'"):

		@connector.action(name="go", title="Go", description="d", input=Empty, output=Empty)
		async def go_again(ctx: ActionContext, params: Empty) -> Empty:
			return params


def test_actions_must_be_async_and_typed_with_models() -> None:
	connector = Connector("strict", "Strict", "d")

	with pytest.raises(TypeError, match="async def"):
		connector.action(name="sync", title="t", description="d", input=Empty, output=Empty)(
			cast(Any, lambda ctx, params: params)
		)
	with pytest.raises(TypeError, match="input must be a Pydantic model"):
		connector.action(name="untyped", title="t", description="d", input=cast(Any, dict), output=Empty)


# --- execute: input and output --------------------------------------------------------------


def test_execute_validates_and_returns_json_ready_output(make_ctx: MakeCtx) -> None:
	result = run(order, make_ctx(), customer="c1", items=[{"sku": "a", "qty": 2}, {"sku": "b", "qty": 3}])

	assert result == {"total": 5, "at": "2026-01-02T03:04:05Z"}


def test_a_dict_result_is_validated_against_the_output_model(make_ctx: MakeCtx) -> None:
	assert run(as_dict, make_ctx(), customer="c") == {"total": 0, "at": "2026-01-02T03:04:05Z"}


def test_invalid_input_lists_every_field_error_as_a_json_pointer(make_ctx: MakeCtx) -> None:
	with pytest.raises(PermanentError) as caught:
		run(
			order,
			make_ctx(),
			items=[{"sku": "a", "qty": 1}, {"sku": "b", "qty": 0}, {"qty": 2}],
			notes={"a/b~c": "x"},
			colour="red",
		)

	error = caught.value
	assert (error.code, error.retryable) == ("invalid_input", False)
	assert [(item["pointer"], item["type"]) for item in error.details["errors"]] == [
		("/customer", "missing"),
		("/items/1/qty", "greater_than_equal"),
		("/items/2/sku", "missing"),
		("/notes/a~1b~0c", "int_parsing"),
		("/colour", "extra_forbidden"),
	]
	assert error.message.startswith("invalid input for demo.order: /customer: Field required; /items/1/qty:")


def test_a_message_lists_five_errors_and_counts_the_rest(make_ctx: MakeCtx) -> None:
	with pytest.raises(PermanentError) as caught:
		run(order, make_ctx(), customer="c", items=[{} for _ in range(4)])

	assert len(caught.value.details["errors"]) == 8
	assert caught.value.message.endswith("; and 3 more")


def test_params_that_are_not_an_object_point_at_the_root(make_ctx: MakeCtx) -> None:
	with pytest.raises(PermanentError) as caught:
		asyncio.run(execute(order, params=cast(Any, ["not", "an", "object"]), ctx=make_ctx()))

	assert caught.value.details["errors"][0]["pointer"] == ""
	assert "(root)" in caught.value.message


def test_output_that_breaks_the_output_model_is_a_permanent_connector_bug(make_ctx: MakeCtx) -> None:
	with pytest.raises(PermanentError) as caught:
		run(wrong, make_ctx())

	assert caught.value.code == "invalid_output"
	assert {item["pointer"] for item in caught.value.details["errors"]} == {"/total", "/at"}


# --- execute: time, cancellation, unexpected failures ---------------------------------------


def test_a_slow_action_is_stopped_at_the_timeout(make_ctx: MakeCtx) -> None:
	ctx = make_ctx(idempotency_key=str(uuid.uuid4()))
	started = time.monotonic()

	with pytest.raises(ActionTimeout) as caught:
		asyncio.run(execute(hang, params={}, ctx=ctx, timeout=0.05))

	assert time.monotonic() - started < 1
	assert caught.value.retryable
	assert caught.value.details == {"timeout_seconds": 0.05}
	assert "did not finish within 0.05 s" in caught.value.message
	assert ctx.idempotency_key in finished  # the action's task was cancelled and cleaned up


def test_the_context_deadline_bounds_the_time_too(make_ctx: MakeCtx) -> None:
	with pytest.raises(ActionTimeout):
		asyncio.run(execute(hang, params={}, ctx=make_ctx(deadline=time.monotonic() + 0.05), timeout=10))


def test_an_action_past_its_deadline_is_not_started(make_ctx: MakeCtx) -> None:
	ctx = make_ctx(idempotency_key=str(uuid.uuid4()), deadline=time.monotonic() - 1)

	with pytest.raises(ActionTimeout, match="not started"):
		asyncio.run(execute(hang, params={}, ctx=ctx))

	assert ctx.idempotency_key not in finished


def test_cancelling_from_another_thread_stops_the_action(make_ctx: MakeCtx) -> None:
	ctx = make_ctx(idempotency_key=str(uuid.uuid4()))
	threading.Timer(0.05, ctx.cancel.set, kwargs={"reason": "cancelled by ada"}).start()
	started = time.monotonic()

	with pytest.raises(ActionCancelled) as caught:
		asyncio.run(execute(hang, params={}, ctx=ctx))

	assert time.monotonic() - started < 1
	assert (caught.value.code, caught.value.retryable, caught.value.message) == (
		"cancelled",
		False,
		"cancelled by ada",
	)
	assert ctx.idempotency_key in finished


def test_an_already_cancelled_step_does_not_start(make_ctx: MakeCtx) -> None:
	ctx = make_ctx(idempotency_key=str(uuid.uuid4()))
	ctx.cancel.set()

	with pytest.raises(ActionCancelled, match="the run was cancelled"):
		run(hang, ctx)

	assert ctx.idempotency_key not in finished


async def test_cancelling_the_caller_is_not_turned_into_an_action_error(make_ctx: MakeCtx) -> None:
	ctx = make_ctx()
	caller = asyncio.ensure_future(execute(hang, params={}, ctx=ctx))
	await asyncio.sleep(0.01)
	ctx.cancel.set()  # even with the signal set, the caller's own cancellation wins
	caller.cancel()

	with pytest.raises(asyncio.CancelledError):
		await caller


def test_an_unexpected_exception_is_retryable_and_keeps_its_type_and_message(
	make_ctx: MakeCtx, caplog: pytest.LogCaptureFixture
) -> None:
	ctx = crashing_ctx(make_ctx, GatewayExploded("upstream said no\nsecond line"), run_id="run-42")

	with caplog.at_level(logging.WARNING, logger="connectors"), pytest.raises(ActionError) as caught:
		run(crash, ctx)

	error = caught.value
	assert type(error) is ActionError
	assert (error.code, error.retryable) == ("unexpected_error", True)
	assert error.message == "demo.crash failed unexpectedly: GatewayExploded: upstream said no\nsecond line"
	assert "Traceback" not in error.message
	assert error.details == {"exception_type": "tests.connectors.test_sdk.GatewayExploded"}
	record = caplog.records[-1]
	assert record.exc_info is not None  # the traceback goes to the log instead
	assert record.__dict__["run_id"] == "run-42"


@pytest.mark.parametrize(
	("raised", "message"),
	[
		(KeyError("sku"), "demo.crash failed unexpectedly: KeyError: 'sku'"),
		(RuntimeError(), "demo.crash failed unexpectedly: RuntimeError"),
		(ValueError("x" * 5000), "demo.crash failed unexpectedly: ValueError: " + "x" * 999 + "…"),
	],
	ids=["builtin", "no-message", "long-message"],
)
def test_unexpected_messages_are_short_and_readable(
	make_ctx: MakeCtx, raised: Exception, message: str
) -> None:
	ctx = crashing_ctx(make_ctx, raised)

	with pytest.raises(ActionError) as caught:
		run(crash, ctx)

	assert caught.value.message == message


def test_an_action_error_passes_through_unchanged(make_ctx: MakeCtx) -> None:
	raised = PermanentError("card declined", code="card_declined", details={"decline": "insufficient_funds"})
	ctx = crashing_ctx(make_ctx, raised)

	with pytest.raises(PermanentError) as caught:
		run(crash, ctx)

	assert caught.value is raised


def test_a_timeout_raised_inside_the_action_is_a_retryable_timeout(make_ctx: MakeCtx) -> None:
	ctx = crashing_ctx(make_ctx, TimeoutError("upstream took too long"))

	with pytest.raises(ActionTimeout, match="upstream took too long"):
		run(crash, ctx)


# --- execute_sync -----------------------------------------------------------------------------


def test_execute_sync_runs_on_a_loop_private_to_each_thread(make_ctx: MakeCtx) -> None:
	results: dict[str, Any] = {}

	def worker(name: str) -> None:
		first = execute_sync(
			order, params={"customer": name, "items": [{"sku": "a", "qty": 1}]}, ctx=make_ctx()
		)
		second = execute_sync(as_dict, params={"customer": name}, ctx=make_ctx())
		results[name] = (first["total"], second["total"])

	threads = [threading.Thread(target=worker, args=(f"t{n}",)) for n in range(4)]
	for thread in threads:
		thread.start()
	for thread in threads:
		thread.join()

	assert results == {f"t{n}": (1, 0) for n in range(4)}


def test_execute_sync_raises_action_errors(make_ctx: MakeCtx) -> None:
	with pytest.raises(ActionTimeout):
		execute_sync(hang, params={}, ctx=make_ctx(), timeout=0.01)


async def test_execute_sync_refuses_to_run_inside_an_event_loop(make_ctx: MakeCtx) -> None:
	with pytest.raises(RuntimeError, match="await execute"):
		execute_sync(order, params={"customer": "c"}, ctx=make_ctx())


# --- context, cancel signal, idempotency keys, errors ----------------------------------------


def test_a_created_context_has_safe_defaults() -> None:
	ctx = ActionContext.create()

	assert uuid.UUID(ctx.idempotency_key)
	assert ctx.network == NetworkPolicy()
	assert ctx.connection is None
	assert ctx.remaining() is None
	assert not ctx.cancel.is_set()


def test_the_context_logger_carries_the_ids(caplog: pytest.LogCaptureFixture) -> None:
	ctx = ActionContext.create(
		run_id="r", step_id="s", tenant_id="t", logger=logging.getLogger("connectors.test")
	)

	with caplog.at_level(logging.INFO, logger="connectors.test"):
		ctx.logger.info("hello %s", "world")

	record = caplog.records[-1]
	assert (
		record.getMessage(),
		record.__dict__["run_id"],
		record.__dict__["step_id"],
		record.__dict__["tenant_id"],
	) == (
		"hello world",
		"r",
		"s",
		"t",
	)


def test_the_connection_is_a_read_only_copy() -> None:
	secrets = {"token": "t"}
	ctx = ActionContext.create(connection=secrets)
	secrets["token"] = "changed"

	assert ctx.connection == {"token": "t"}
	with pytest.raises(TypeError):
		cast(Any, ctx.connection)["token"] = "x"


def test_remaining_counts_down_to_the_deadline() -> None:
	ctx = ActionContext.create(deadline=time.monotonic() + 10)

	remaining = ctx.remaining()
	assert remaining is not None
	assert 9 < remaining <= 10


async def test_the_cancel_signal_wakes_waiters_in_other_threads_and_loops() -> None:
	signal = CancelSignal()
	woken = threading.Event()

	def other_loop() -> None:
		asyncio.run(signal.wait())
		woken.set()

	thread = threading.Thread(target=other_loop)
	thread.start()
	waiter = asyncio.ensure_future(signal.wait())
	await asyncio.sleep(0.02)
	assert not waiter.done()

	threading.Thread(target=signal.set, args=("stop",)).start()

	await asyncio.wait_for(waiter, 1)
	thread.join(1)
	assert woken.is_set()
	assert signal.reason == "stop"


async def test_waiting_on_a_set_signal_returns_at_once() -> None:
	signal = CancelSignal()
	signal.set()

	await asyncio.wait_for(signal.wait(), 1)


def test_the_first_reason_wins_and_raise_if_cancelled_uses_it() -> None:
	signal = CancelSignal()
	signal.raise_if_cancelled()  # not set: nothing happens
	assert signal.reason is None

	signal.set("first")
	signal.set("second")

	with pytest.raises(ActionCancelled, match="first"):
		signal.raise_if_cancelled()


def explode() -> None:
	raise ZeroDivisionError("a broken callback")


def test_callbacks_run_once_and_can_be_removed(caplog: pytest.LogCaptureFixture) -> None:
	signal = CancelSignal()
	calls: list[str] = []
	signal.add_callback(lambda: calls.append("a"))
	remove = signal.add_callback(lambda: calls.append("removed"))
	signal.add_callback(explode)
	remove()

	with caplog.at_level(logging.ERROR):
		signal.set()
		signal.set()
	signal.add_callback(lambda: calls.append("late"))()

	assert calls == ["a", "late"]
	assert "a cancellation callback failed" in caplog.text


def test_a_waiter_whose_loop_was_closed_does_not_break_set(caplog: pytest.LogCaptureFixture) -> None:
	# Given a waiter abandoned on a loop that was closed under it (a worker shutting down),
	signal = CancelSignal()
	loop = asyncio.new_event_loop()
	abandoned = loop.create_task(signal.wait())
	loop.run_until_complete(asyncio.sleep(0.01))
	loop.close()

	# when the signal is set, the other waiters are still woken and nothing is logged as failed.
	calls: list[str] = []
	signal.add_callback(lambda: calls.append("woken"))
	with caplog.at_level(logging.ERROR):
		signal.set()

	assert calls == ["woken"]
	assert "callback failed" not in caplog.text
	assert not abandoned.done()


def test_idempotency_keys_are_stable_per_attempt_and_uuid_shaped() -> None:
	key = make_idempotency_key(run_id="r1", node_id="charge card", iteration=3, attempt=1)

	assert key == make_idempotency_key(run_id="r1", node_id="charge card", iteration=3, attempt=1)
	assert key != make_idempotency_key(run_id="r1", node_id="charge card", iteration=3, attempt=2)
	assert key != make_idempotency_key(run_id="r1", node_id="charge card", iteration="3/0", attempt=1)
	assert uuid.UUID(key).version == 5


@pytest.mark.parametrize(
	"error",
	[
		ActionError("x", code="c", retryable=True, details={"a": [1]}),
		RetryableError("slow down", code="rate_limited", details={"retry_after_seconds": 3}),
		PermanentError("nope"),
		ActionCancelled(),
		ActionTimeout("late"),
	],
	ids=lambda error: type(error).__name__,
)
def test_errors_survive_pickling_for_celery(error: ActionError) -> None:
	copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own objects, as Celery's pickle serializer does

	assert type(copy) is type(error)
	assert copy.to_dict() == error.to_dict()
	assert str(copy) == error.message
	assert repr(copy) == repr(error)


def test_error_defaults_describe_the_kind() -> None:
	assert ActionTimeout("late").to_dict() == {
		"type": "ActionTimeout",
		"code": "timeout",
		"message": "late",
		"retryable": True,
		"details": {},
	}
	assert (PermanentError("p").code, PermanentError("p").retryable) == ("permanent_error", False)
	assert (RetryableError("r").code, RetryableError("r").retryable) == ("retryable_error", True)
	assert ActionCancelled().message == "the action was cancelled"
