"""The connector SDK: declare actions with typed inputs and outputs, and run them.

A connector is a named group of actions. An action is an ``async def`` taking an
:class:`ActionContext` and an instance of its Pydantic input model, returning an instance of
its output model (or a dict that validates against it)::

	weather = Connector("weather", "Weather", "Current conditions by city.", "1.0.0")

	class Query(BaseModel):
		city: str = Field(description="City name, e.g. 'Lisbon'.")

	class Conditions(BaseModel):
		celsius: float = Field(description="Air temperature.")

	@weather.action(name="current", title="Current conditions", description="...", input=Query, output=Conditions)
	async def current(ctx: ActionContext, params: Query) -> Conditions:
		...

The engine runs an action through :func:`execute` (or :func:`execute_sync` from a worker
thread), which validates the input, applies the time budget and cancellation, validates the
output into JSON-ready data, and turns every failure into an :class:`ActionError` whose
``retryable`` flag drives the retry policy. The input and output models double as the JSON
Schemas that the designer renders forms from and the marketplace lists.

Plain Python: no Django, so the engine's pure core and its tests use it without a database.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import inspect
import itertools
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic, Literal, TypeAlias, TypeVar

from pydantic import BaseModel, ValidationError

from connectors.errors import ActionCancelled, ActionError, ActionTimeout, PermanentError, RetryableError
from connectors.network import NetworkPolicy

__all__ = [
	"Action",
	"ActionCancelled",
	"ActionContext",
	"ActionError",
	"ActionFunction",
	"ActionTimeout",
	"CancelSignal",
	"Connector",
	"NetworkPolicy",
	"PermanentError",
	"RetryableError",
	"execute",
	"execute_sync",
	"make_idempotency_key",
]

_log = logging.getLogger(__name__)

InputT = TypeVar("InputT", bound=BaseModel)
OutputT = TypeVar("OutputT", bound=BaseModel)

ActionFunction: TypeAlias = Callable[
	["ActionContext", InputT], Coroutine[Any, Any, OutputT | Mapping[str, Any]]
]
"""The shape of an action: ``async def action(ctx, params) -> Output | dict``."""

_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
_IDEMPOTENCY_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:apg-workflow-orchestration:idempotency-key")
_MAX_ERRORS_IN_MESSAGE = 5
_MAX_MESSAGE_CHARS = 1000


def make_idempotency_key(*, run_id: str, node_id: str, iteration: int | str = 0, attempt: int = 1) -> str:
	"""The idempotency key of one step attempt, as the engine builds it.

	The same run, node, loop/map iteration and attempt always give the same key, so a
	redelivered task repeats the key and the remote side can deduplicate. The key is a UUID:
	every API that accepts idempotency keys accepts that shape, whatever the node ids contain.

	Args:
		run_id: The run's id.
		node_id: The task node's id in the definition.
		iteration: The loop iteration or map item index (a path like ``"2/5"`` when nested).
		attempt: The attempt number, from 1.

	Returns:
		A UUID string.
	"""
	name = "\x1f".join((str(run_id), str(node_id), str(iteration), str(attempt)))
	return str(uuid.uuid5(_IDEMPOTENCY_NAMESPACE, name))


def _threadsafe(loop: asyncio.AbstractEventLoop, callback: Callable[[], object]) -> Callable[[], None]:
	def schedule() -> None:
		# A closed loop raises RuntimeError: nobody is waiting on it any more.
		with contextlib.suppress(RuntimeError):
			loop.call_soon_threadsafe(callback)

	return schedule


def _resolve(future: asyncio.Future[None]) -> None:
	if not future.done():
		future.set_result(None)


class CancelSignal:
	"""A thread-safe, one-way "stop now" flag for a running action.

	The engine (or any thread) calls :meth:`set`; actions poll :meth:`is_set` or
	:meth:`raise_if_cancelled` between steps of work, or ``await`` :meth:`wait`.
	:func:`execute` also cancels the action's task when the signal is set, so an action
	blocked in ``await`` stops without checking anything.
	"""

	__slots__ = ("_callbacks", "_event", "_lock", "_reason", "_tokens")

	def __init__(self) -> None:
		self._event = threading.Event()
		self._lock = threading.Lock()
		self._callbacks: dict[int, Callable[[], None]] = {}
		self._reason: str | None = None
		self._tokens = itertools.count()

	def set(self, reason: str = "the run was cancelled") -> None:
		"""Signal cancellation (only the first call counts) and wake every waiter.

		Args:
			reason: Why, for the error the action ends with.
		"""
		with self._lock:
			if self._event.is_set():
				return
			self._reason = reason
			self._event.set()
			callbacks = list(self._callbacks.values())
			self._callbacks.clear()
		for callback in callbacks:
			try:
				callback()
			except Exception:
				_log.exception("a cancellation callback failed")

	def is_set(self) -> bool:
		"""Whether cancellation was signalled."""
		return self._event.is_set()

	@property
	def reason(self) -> str | None:
		"""Why cancellation was signalled, or None while it was not."""
		return self._reason

	def add_callback(self, callback: Callable[[], None]) -> Callable[[], None]:
		"""Call ``callback()`` once when the signal is set (at once if it already is).

		The callback runs in the thread that calls :meth:`set`: it must be quick and
		thread-safe (``loop.call_soon_threadsafe`` to reach an event loop).

		Returns:
			A function that removes the callback again.
		"""
		with self._lock:
			if not self._event.is_set():
				token = next(self._tokens)
				self._callbacks[token] = callback
				return functools.partial(self._remove, token)
		callback()
		return _nothing

	def _remove(self, token: int) -> None:
		with self._lock:
			self._callbacks.pop(token, None)

	async def wait(self) -> None:
		"""Return once the signal is set; cancelling the awaiting task stops waiting."""
		if self.is_set():
			return
		loop = asyncio.get_running_loop()
		future: asyncio.Future[None] = loop.create_future()
		remove = self.add_callback(_threadsafe(loop, functools.partial(_resolve, future)))
		try:
			await future
		finally:
			remove()

	def raise_if_cancelled(self) -> None:
		"""Raise :class:`ActionCancelled` if the signal is set.

		Raises:
			ActionCancelled: With the cancellation reason as its message.
		"""
		if self.is_set():
			raise ActionCancelled(self._reason or "the action was cancelled")


def _nothing() -> None:
	return None


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionContext:
	"""What an action knows about the step it runs in. Build one with :meth:`create`.

	Attributes:
		idempotency_key: The key of this step attempt (run, node, iteration, attempt); pass it
			on to remote systems, e.g. as the HTTP ``Idempotency-Key`` header.
		logger: A logger whose records carry ``run_id``, ``step_id`` and ``tenant_id``.
		cancel: Set when the run or step is cancelled.
		run_id: The run's id, or None outside a run (a designer test call).
		step_id: The step's id, or None outside a run.
		tenant_id: The tenant's id, or None outside a run.
		attempt: The attempt number, from 1.
		deadline: ``time.monotonic()`` value by which the step must finish, or None.
		connection: Decrypted credentials of the connection the step uses, or None.
		network: Where outbound connections may go.
	"""

	idempotency_key: str
	logger: logging.LoggerAdapter[logging.Logger]
	cancel: CancelSignal = field(default_factory=CancelSignal)
	run_id: str | None = None
	step_id: str | None = None
	tenant_id: str | None = None
	attempt: int = 1
	deadline: float | None = None
	connection: Mapping[str, str] | None = None
	network: NetworkPolicy = field(default_factory=NetworkPolicy)

	@classmethod
	def create(
		cls,
		*,
		idempotency_key: str | None = None,
		run_id: str | None = None,
		step_id: str | None = None,
		tenant_id: str | None = None,
		attempt: int = 1,
		deadline: float | None = None,
		connection: Mapping[str, str] | None = None,
		network: NetworkPolicy | None = None,
		cancel: CancelSignal | None = None,
		logger: logging.Logger | None = None,
	) -> ActionContext:
		"""Build a context, with the logger adapter and defaults filled in.

		Args:
			idempotency_key: See the class; None makes a random one (a one-off call).
			run_id: See the class.
			step_id: See the class.
			tenant_id: See the class.
			attempt: See the class.
			deadline: See the class.
			connection: See the class; copied into a read-only mapping.
			network: See the class; None refuses every non-public address.
			cancel: See the class; None makes a fresh signal.
			logger: The logger to adapt; defaults to the ``connectors`` logger.

		Returns:
			The context.
		"""
		extra = {"run_id": run_id, "step_id": step_id, "tenant_id": tenant_id}
		return cls(
			idempotency_key=idempotency_key or str(uuid.uuid4()),
			logger=logging.LoggerAdapter(logger or logging.getLogger("connectors"), extra),
			cancel=cancel or CancelSignal(),
			run_id=run_id,
			step_id=step_id,
			tenant_id=tenant_id,
			attempt=attempt,
			deadline=deadline,
			connection=None if connection is None else MappingProxyType(dict(connection)),
			network=network or NetworkPolicy(),
		)

	def remaining(self) -> float | None:
		"""Seconds left before :attr:`deadline` (negative once passed), or None without one."""
		return None if self.deadline is None else self.deadline - time.monotonic()


@functools.lru_cache(maxsize=512)
def _schema(model: type[BaseModel], mode: Literal["validation", "serialization"]) -> dict[str, Any]:
	return model.model_json_schema(mode=mode)


@dataclass(frozen=True)
class Action(Generic[InputT, OutputT]):
	"""One operation of a connector; made by :meth:`Connector.action`.

	Attributes:
		connector: The connector's name.
		name: The action's name, unique within its connector.
		title: A short label for the designer palette.
		description: What it does, for the palette and the marketplace.
		input: The Pydantic model of its parameters.
		output: The Pydantic model of its result.
		function: The implementation.
		cpu_bound: True when it computes rather than waits; the engine routes it to the
			``steps.cpu`` queue.
		idempotent: True when running it twice has the effect of running it once, so the
			engine may retry it even after an ambiguous failure.
	"""

	connector: str
	name: str
	title: str
	description: str
	input: type[InputT]
	output: type[OutputT]
	function: ActionFunction[InputT, OutputT] = field(repr=False)
	cpu_bound: bool = False
	idempotent: bool = False

	@property
	def key(self) -> str:
		"""``connector.action``, the name definitions use."""
		return f"{self.connector}.{self.name}"

	def input_schema(self) -> dict[str, Any]:
		"""The JSON Schema (draft 2020-12) of the parameters; a fresh copy each call."""
		return copy.deepcopy(_schema(self.input, "validation"))

	def output_schema(self) -> dict[str, Any]:
		"""The JSON Schema (draft 2020-12) of the result; a fresh copy each call."""
		return copy.deepcopy(_schema(self.output, "serialization"))

	def describe(self) -> dict[str, Any]:
		"""The action as the catalog lists it: metadata and both schemas."""
		return {
			"name": self.name,
			"key": self.key,
			"title": self.title,
			"description": self.description,
			"cpu_bound": self.cpu_bound,
			"idempotent": self.idempotent,
			"input_schema": self.input_schema(),
			"output_schema": self.output_schema(),
		}

	def __call__(
		self, ctx: ActionContext, params: InputT
	) -> Coroutine[Any, Any, OutputT | Mapping[str, Any]]:
		"""Call the implementation directly, skipping :func:`execute`'s checks."""
		return self.function(ctx, params)


class Connector:
	"""A named, versioned group of actions.

	Args:
		name: Identifier used in definitions (``http``): lower-case letters, digits and ``_``.
		title: Display name.
		description: What it connects to, for the marketplace listing.
		version: The connector's version (semantic versioning recommended).

	Raises:
		ValueError: ``name`` or ``version`` is malformed.
	"""

	def __init__(self, name: str, title: str, description: str, version: str = "1.0.0") -> None:
		if not _NAME.fullmatch(name):
			raise ValueError(
				f"connector name {name!r} must be 1-63 lower-case letters, digits or '_', starting with a letter"
			)
		if not version.strip():
			raise ValueError(f"connector {name!r} needs a version")
		self.name = name
		self.title = title
		self.description = description
		self.version = version
		self._actions: dict[str, Action[Any, Any]] = {}

	def __repr__(self) -> str:
		return f"Connector({self.name!r}, version={self.version!r}, actions={sorted(self._actions)!r})"

	@property
	def actions(self) -> Mapping[str, Action[Any, Any]]:
		"""The actions by name (read-only)."""
		return MappingProxyType(self._actions)

	def get_action(self, name: str) -> Action[Any, Any] | None:
		"""The action called ``name``, or None."""
		return self._actions.get(name)

	def action(
		self,
		*,
		name: str,
		title: str,
		description: str,
		input: type[InputT],
		output: type[OutputT],
		cpu_bound: bool = False,
		idempotent: bool = False,
	) -> Callable[[ActionFunction[InputT, OutputT]], Action[InputT, OutputT]]:
		"""Declare an action; decorates its ``async def`` implementation.

		Args:
			name: Identifier within the connector: lower-case letters, digits and ``_``.
			title: A short label for the designer palette.
			description: What it does.
			input: Pydantic model of the parameters (give each field a description: the
				designer renders forms from it).
			output: Pydantic model of the result.
			cpu_bound: See :attr:`Action.cpu_bound`.
			idempotent: See :attr:`Action.idempotent`.

		Returns:
			A decorator that registers the function and returns the :class:`Action`.

		Raises:
			ValueError: ``name`` is malformed or already taken in this connector.
			TypeError: A model is not a Pydantic model, or the function is not ``async def``.
		"""
		if not _NAME.fullmatch(name):
			raise ValueError(
				f"action name {name!r} must be 1-63 lower-case letters, digits or '_', starting with a letter"
			)
		for role, model in (("input", input), ("output", output)):
			if not (isinstance(model, type) and issubclass(model, BaseModel)):
				raise TypeError(f"action {self.name}.{name}: {role} must be a Pydantic model class")

		def register(function: ActionFunction[InputT, OutputT]) -> Action[InputT, OutputT]:
			if not inspect.iscoroutinefunction(function):
				raise TypeError(f"action {self.name}.{name} must be an 'async def' function")
			if name in self._actions:
				raise ValueError(f"connector {self.name!r} already has an action named {name!r}")
			action = Action(
				connector=self.name,
				name=name,
				title=title,
				description=description,
				input=input,
				output=output,
				function=function,
				cpu_bound=cpu_bound,
				idempotent=idempotent,
			)
			self._actions[name] = action
			return action

		return register

	def describe(self) -> dict[str, Any]:
		"""The connector as the catalog lists it, actions sorted by name."""
		return {
			"name": self.name,
			"title": self.title,
			"description": self.description,
			"version": self.version,
			"actions": [self._actions[name].describe() for name in sorted(self._actions)],
		}


# --- running an action -------------------------------------------------------------------


def _has_item(container: Any, key: int | str) -> bool:
	if isinstance(container, Mapping):
		return key in container
	return isinstance(container, list | tuple) and isinstance(key, int) and 0 <= key < len(container)


def _pointer(loc: tuple[int | str, ...], data: Any) -> str:
	"""The JSON pointer, into ``data``, of a Pydantic error location.

	Locations name union members (``basic`` for a tagged union, a class name otherwise)
	between real keys; those are skipped by walking ``data`` alongside.
	"""
	parts: list[str] = []
	current = data
	for index, key in enumerate(loc):
		if _has_item(current, key):
			current = current[key]
		elif index < len(loc) - 1:
			continue
		parts.append(str(key).replace("~", "~0").replace("/", "~1"))
	return "".join(f"/{part}" for part in parts)


def _field_errors(exc: ValidationError, data: Any) -> list[dict[str, str]]:
	return [
		{"pointer": _pointer(error["loc"], data), "message": error["msg"], "type": error["type"]}
		for error in exc.errors(include_url=False, include_context=False, include_input=False)
	]


def _summary(errors: list[dict[str, str]]) -> str:
	shown = "; ".join(
		f"{error['pointer'] or '(root)'}: {error['message']}" for error in errors[:_MAX_ERRORS_IN_MESSAGE]
	)
	hidden = len(errors) - _MAX_ERRORS_IN_MESSAGE
	return shown + (f"; and {hidden} more" if hidden > 0 else "")


def _validated_input(action: Action[InputT, Any], params: Mapping[str, Any]) -> InputT:
	try:
		return action.input.model_validate(params)
	except ValidationError as exc:
		errors = _field_errors(exc, params)
		raise PermanentError(
			f"invalid input for {action.key}: {_summary(errors)}",
			code="invalid_input",
			details={"errors": errors},
		) from None


def _serialised_output(action: Action[Any, OutputT], result: Any) -> dict[str, Any]:
	try:
		model = result if isinstance(result, action.output) else action.output.model_validate(result)
	except ValidationError as exc:
		errors = _field_errors(exc, result)
		raise PermanentError(
			f"{action.key} returned output that does not match its output model (a connector bug): {_summary(errors)}",
			code="invalid_output",
			details={"errors": errors},
		) from None
	return model.model_dump(mode="json")


def _time_budget(action: Action[Any, Any], ctx: ActionContext, timeout: float | None) -> float | None:
	limits = [limit for limit in (timeout, ctx.remaining()) if limit is not None]
	if not limits:
		return None
	budget = min(limits)
	if budget <= 0:
		raise ActionTimeout(
			f"{action.key} was not started: its time budget was already spent",
			details={"timeout_seconds": max(budget, 0.0)},
		)
	return budget


def _log_unexpected_error(ctx: ActionContext, action: Action[Any, Any], exc: Exception) -> None:
	ctx.logger.warning("action %s raised an unexpected %s", action.key, type(exc).__name__, exc_info=exc)


def _unexpected(ctx: ActionContext, action: Action[Any, Any], exc: Exception) -> ActionError:
	_log_unexpected_error(ctx, action, exc)
	kind = type(exc)
	qualified = (
		kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
	)
	text = str(exc)
	if len(text) > _MAX_MESSAGE_CHARS:
		text = text[: _MAX_MESSAGE_CHARS - 1] + "…"
	described = f"{kind.__name__}: {text}" if text else kind.__name__
	return ActionError(
		f"{action.key} failed unexpectedly: {described}",
		code="unexpected_error",
		retryable=True,
		details={"exception_type": qualified},
	)


def _outer_cancelled() -> bool:
	current = asyncio.current_task()
	return bool(current and current.cancelling())


async def execute(
	action: Action[Any, Any],
	*,
	params: Mapping[str, Any],
	ctx: ActionContext,
	timeout: float | None = None,
) -> dict[str, Any]:
	"""Run one action attempt: validate, call under a time budget, classify the outcome.

	Args:
		action: The action to run.
		params: Its parameters (mapping output, already evaluated).
		ctx: The step's context; its ``deadline`` also bounds the time budget.
		timeout: Seconds the action may take; None for no limit beyond ``ctx.deadline``.

	Returns:
		The output as JSON-ready data (the output model dumped with ``mode="json"``).

	Raises:
		PermanentError: ``invalid_input`` with ``details["errors"]`` a list of
			``{pointer, message, type}`` (JSON pointers into ``params``); ``invalid_output``
			when the action returned something its output model rejects; or whatever
			permanent error the action raised.
		ActionTimeout: The time budget ran out (the action's task is cancelled).
		ActionCancelled: ``ctx.cancel`` was set (the action's task is cancelled).
		ActionError: Any other failure; an exception that is not an ActionError becomes a
			retryable ``unexpected_error`` naming the exception type and message (the
			traceback goes to ``ctx.logger``, never into the message).
	"""
	ctx.cancel.raise_if_cancelled()
	arguments = _validated_input(action, params)
	budget = _time_budget(action, ctx, timeout)
	loop = asyncio.get_running_loop()
	# A task of its own, so cancelling the action (timeout or signal) never cancels the caller.
	task = loop.create_task(action.function(ctx, arguments))
	remove_callback = ctx.cancel.add_callback(_threadsafe(loop, task.cancel))
	scope = asyncio.timeout(budget)
	try:
		async with scope:
			result = await task
	except ActionError:
		raise
	except asyncio.CancelledError:
		if ctx.cancel.is_set() and not _outer_cancelled():
			raise ActionCancelled(ctx.cancel.reason or "the action was cancelled") from None
		raise
	except TimeoutError as exc:
		if scope.expired():
			raise ActionTimeout(
				f"{action.key} did not finish within {budget:g} s and was stopped",
				details={"timeout_seconds": budget},
			) from None
		raise ActionTimeout(f"{action.key} timed out: {exc or type(exc).__name__}") from exc
	except Exception as exc:
		raise _unexpected(ctx, action, exc) from exc
	finally:
		remove_callback()
	return _serialised_output(action, result)


class _LoopOwner:
	"""Owns one thread's private event loop and closes it when the thread ends."""

	def __init__(self) -> None:
		self.loop = asyncio.new_event_loop()

	def __del__(self) -> None:
		self.loop.close()


_thread_state = threading.local()


def _thread_loop() -> asyncio.AbstractEventLoop:
	owner: _LoopOwner | None = getattr(_thread_state, "owner", None)
	if owner is None:
		owner = _LoopOwner()
		_thread_state.owner = owner
	return owner.loop


def execute_sync(
	action: Action[Any, Any],
	*,
	params: Mapping[str, Any],
	ctx: ActionContext,
	timeout: float | None = None,
) -> dict[str, Any]:
	""":func:`execute` for synchronous callers such as Celery worker threads.

	Runs on an event loop private to the calling thread, created on first use and kept for
	the thread's life, so a warm worker does not pay for a new loop per step.

	Args:
		action: See :func:`execute`.
		params: See :func:`execute`.
		ctx: See :func:`execute`.
		timeout: See :func:`execute`.

	Returns:
		See :func:`execute`.

	Raises:
		ActionError: See :func:`execute`.
		RuntimeError: Called from a thread that is running an event loop (await
			:func:`execute` there instead).
	"""
	try:
		asyncio.get_running_loop()
	except RuntimeError:
		return _thread_loop().run_until_complete(execute(action, params=params, ctx=ctx, timeout=timeout))
	raise RuntimeError("execute_sync() cannot run inside a running event loop; use 'await execute(...)'")
