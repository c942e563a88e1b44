"""Compiling one expression and evaluating it against a context.

:func:`compile_expression` parses plain paths itself (see :mod:`workflows.expressions.paths`)
and sends everything else to a sandbox once, to have jq check it and name the variables it
reads; either way the result is cached. :meth:`Expression.evaluate` answers paths in-process
and runs the rest in the sandbox pool under the time and output limits.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workflows.expressions.errors import (
	ExpressionMultipleValues,
	ExpressionOutputTooLarge,
	ExpressionRuntimeError,
	ExpressionSandboxError,
	ExpressionSyntaxError,
	ExpressionTimeout,
)
from workflows.expressions.limits import current_limits
from workflows.expressions.paths import EMPTY, NeedsJq, PathExpression, parse_path
from workflows.expressions.sandbox import get_pool
from workflows.expressions.scanner import ScanError, find_closing_brace
from workflows.expressions.worker import dump_json

__all__ = [
	"CacheInfo",
	"Evaluation",
	"Expression",
	"clear_compile_cache",
	"compile_cache_info",
	"compile_expression",
	"strip_wrapper",
]


@dataclass(frozen=True, slots=True)
class CacheInfo:
	"""Counters of the compiled-expression cache."""

	hits: int
	misses: int
	size: int


class _CompileCache:
	"""A thread-safe LRU of compiled expressions keyed by source text."""

	def __init__(self) -> None:
		self._lock = threading.Lock()
		self._entries: OrderedDict[str, Expression] = OrderedDict()
		self.hits = 0
		self.misses = 0

	def get(self, source: str) -> Expression | None:
		with self._lock:
			expression = self._entries.get(source)
			if expression is None:
				self.misses += 1
				return None
			self.hits += 1
			self._entries.move_to_end(source)
			return expression

	def put(self, source: str, expression: Expression, max_size: int) -> None:
		with self._lock:
			self._entries[source] = expression
			while len(self._entries) > max_size:
				self._entries.popitem(last=False)

	def clear(self) -> None:
		with self._lock:
			self._entries.clear()
			self.hits = self.misses = 0

	def info(self) -> CacheInfo:
		with self._lock:
			return CacheInfo(hits=self.hits, misses=self.misses, size=len(self._entries))


_cache = _CompileCache()


def compile_cache_info() -> CacheInfo:
	"""Hits, misses and size of the compiled-expression cache."""
	return _cache.info()


def clear_compile_cache() -> None:
	"""Forget every compiled expression (and reset the counters)."""
	_cache.clear()


class Evaluation:
	"""The state shared by the expressions of one evaluation.

	A template with several expressions serializes the context once and spends one time
	budget, not one per expression.

	Args:
		context: The evaluation context (see :func:`~workflows.expressions.context.build_context`).
		timeout: Seconds for the whole evaluation; None uses :attr:`Limits.timeout`.
		max_output_bytes: Largest result of each expression; None uses :attr:`Limits.max_output_bytes`.

	Raises:
		TypeError: ``context`` is not a mapping.
		ValueError: A limit is not positive.
	"""

	__slots__ = ("_context_json", "context", "deadline", "max_output_bytes", "timeout")

	def __init__(
		self, context: Mapping[str, Any], *, timeout: float | None, max_output_bytes: int | None
	) -> None:
		if not isinstance(context, Mapping):
			raise TypeError(f"the evaluation context must be a mapping, not {type(context).__name__}")
		limits = current_limits()
		self.timeout = limits.timeout if timeout is None else timeout
		self.max_output_bytes = limits.max_output_bytes if max_output_bytes is None else max_output_bytes
		if not self.timeout > 0 or self.max_output_bytes < 1:
			raise ValueError("timeout and max_output_bytes must be positive")
		self.context = context
		self.deadline = time.monotonic() + self.timeout
		self._context_json: str | None = None

	def context_json(self, source: str) -> str:
		"""The context as JSON, serialized on first use."""
		if self._context_json is None:
			try:
				self._context_json = dump_json(
					self.context if isinstance(self.context, dict) else dict(self.context)
				)
			except (TypeError, ValueError) as exc:
				raise ExpressionRuntimeError(
					f"the evaluation context is not valid JSON: {exc}", source=source
				) from None
		return self._context_json


class Expression:
	"""A compiled expression; get one from :func:`compile_expression`.

	Built directly, an expression skips jq's check and, without a ``path``, always runs in
	the sandbox (tests use that to compare the two paths).

	Attributes:
		source: The jq source, without the ``${ }`` wrapper.
		variables: The context keys it reads as variables (``$steps`` → ``"steps"``).
	"""

	__slots__ = ("_names", "_path", "source", "variables")

	def __init__(self, source: str, variables: frozenset[str], path: PathExpression | None = None) -> None:
		self.source = source
		self.variables = variables
		self._names = tuple(sorted(variables))
		self._path = path

	@property
	def is_fast_path(self) -> bool:
		"""True when the expression is a plain path, answered without a sandbox."""
		return self._path is not None

	def __repr__(self) -> str:
		return f"Expression({self.source!r})"

	def __eq__(self, other: object) -> bool:
		return isinstance(other, Expression) and other.source == self.source

	def __hash__(self) -> int:
		return hash(self.source)

	def evaluate(
		self, context: Mapping[str, Any], *, timeout: float | None = None, max_output_bytes: int | None = None
	) -> Any:
		"""Evaluate against ``context``.

		The context is jq's input ``.`` and each top-level key is also a variable, so
		``.input.x`` and ``$input.x`` mean the same.

		Args:
			context: A JSON object (see :func:`~workflows.expressions.context.build_context`).
			timeout: Seconds the evaluation may take; None uses :attr:`Limits.timeout`.
			max_output_bytes: Largest result as compact UTF-8 JSON; None uses the limit.

		Returns:
			The single value the expression produced, or None when it produced none. The
			value may share structure with ``context``: treat it as read-only.

		Raises:
			ExpressionRuntimeError: jq raised an error, or a variable is missing from the context.
			ExpressionMultipleValues: The expression produced more than one value.
			ExpressionTimeout: It ran longer than ``timeout``.
			ExpressionOutputTooLarge: Its result is larger than ``max_output_bytes``.
			ExpressionSandboxError: The sandbox died (usually the memory limit).
		"""
		return self.run(Evaluation(context, timeout=timeout, max_output_bytes=max_output_bytes))

	def run(self, evaluation: Evaluation) -> Any:
		"""Evaluate as part of a larger :class:`Evaluation` (a template)."""
		context = evaluation.context
		for name in self._names:
			if name not in context:
				defined = ", ".join(
					f"${key}" for key in sorted(context) if isinstance(key, str) and key.isidentifier()
				)
				raise ExpressionRuntimeError(
					f"jq: error: ${name} is not defined (this context defines {defined or 'no variables'})",
					source=self.source,
				)
		if self._path is not None:
			try:
				value = self._path.resolve(context)
			except NeedsJq:
				pass  # jq knows the exact error message; let it say it
			else:
				return None if value is EMPTY else self._checked(value, evaluation.max_output_bytes)
		return self._run_in_sandbox(evaluation)

	def _checked(self, value: Any, max_output_bytes: int) -> Any:
		try:
			size = len(dump_json(value).encode("utf-8"))
		except (TypeError, ValueError) as exc:
			raise ExpressionRuntimeError(f"the result is not valid JSON: {exc}", source=self.source) from None
		if size > max_output_bytes:
			raise ExpressionOutputTooLarge(max_output_bytes, size, source=self.source)
		return value

	def _run_in_sandbox(self, evaluation: Evaluation) -> Any:
		remaining = evaluation.deadline - time.monotonic()
		if remaining <= 0:
			raise ExpressionTimeout(evaluation.timeout, source=self.source)
		request = (
			"eval",
			self.source,
			self._names,
			evaluation.context_json(self.source),
			evaluation.max_output_bytes,
		)
		try:
			reply = get_pool().request(request, timeout=remaining, source=self.source)
		except ExpressionTimeout:
			raise ExpressionTimeout(evaluation.timeout, source=self.source) from None
		match reply:
			case ("ok", None):
				return None
			case ("ok", str() as text):
				return json.loads(text)
			case ("runtime", str() as message):
				raise ExpressionRuntimeError(message, source=self.source)
			case ("multiple", int() as count, bool() as more):
				raise ExpressionMultipleValues(count, more=more, source=self.source)
			case ("too_large", int() as size):
				raise ExpressionOutputTooLarge(evaluation.max_output_bytes, size, source=self.source)
			case ("syntax", str() as message):
				raise ExpressionSyntaxError(message, source=self.source)
			case _:
				raise ExpressionSandboxError(
					f"the sandbox sent an unexpected reply {reply[:1]!r}", source=self.source
				)


def strip_wrapper(source: str) -> str:
	"""Remove a ``${ ... }`` wrapper and surrounding whitespace, if present.

	Args:
		source: jq source, wrapped or not.

	Returns:
		The bare jq source.

	Raises:
		ExpressionSyntaxError: The wrapper is not closed, or text follows it.
	"""
	stripped = source.strip()
	if not stripped.startswith("${"):
		return stripped
	try:
		end = find_closing_brace(stripped, 2)
	except ScanError as exc:
		raise ExpressionSyntaxError(str(exc), source=source) from None
	if end != len(stripped) - 1:
		raise ExpressionSyntaxError(
			"text follows the closing } of ${ ... }; use compile_template for text with embedded expressions",
			source=source,
		)
	return stripped[2:end].strip()


def compile_expression(source: str) -> Expression:
	"""Compile a jq expression, with or without its ``${ }`` wrapper.

	Compiled expressions are cached by source text, so compiling the same text again is a
	dictionary lookup.

	Args:
		source: jq source such as ``.input.amount`` or ``${ $steps.fetch.output | length }``.

	Returns:
		The compiled expression.

	Raises:
		ExpressionSyntaxError: The source is empty, too long or not valid jq.
		ExpressionTimeout: Compiling took longer than :attr:`Limits.timeout` (jq folds constants
			while compiling, so ``"x" * 1e9`` does its work here).
		ExpressionSandboxError: No sandbox could check the expression.
	"""
	if not isinstance(source, str):
		raise TypeError(f"an expression must be a string, not {type(source).__name__}")
	if (cached := _cache.get(source)) is not None:
		return cached
	limits = current_limits()
	jq_source = strip_wrapper(source)
	if not jq_source:
		raise ExpressionSyntaxError("the expression is empty", source=source)
	if len(jq_source) > limits.max_source_length:
		raise ExpressionSyntaxError(
			f"the expression is {len(jq_source)} characters long; the limit is {limits.max_source_length} characters",
			source=jq_source,
		)
	expression = _compile(jq_source, limits.timeout)
	_cache.put(source, expression, limits.compile_cache_size)
	return expression


def _compile(jq_source: str, timeout: float) -> Expression:
	path = parse_path(jq_source)
	if path is not None:
		return Expression(jq_source, path.variables, path)
	reply = get_pool().request(("compile", jq_source), timeout=timeout, source=jq_source)
	match reply:
		case ("compiled", tuple() as variables):
			return Expression(jq_source, frozenset(variables))
		case ("syntax", str() as message):
			raise ExpressionSyntaxError(message, source=jq_source)
		case _:
			raise ExpressionSandboxError(
				f"the sandbox sent an unexpected reply {reply[:1]!r}", source=jq_source
			)
