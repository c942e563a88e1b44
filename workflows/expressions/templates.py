"""JSON templates: values in which strings may hold ``${ ... }`` expressions.

A string that is exactly one ``${ ... }`` (whitespace around it allowed) takes the JSON type
of its result, so ``{"amount": "${ .input.amount }"}`` yields a number. Expressions inside a
longer string are interpolated: strings as they are, null as nothing, anything else as
compact JSON (numbers formatted as jq formats them). ``$${`` writes a literal ``${``.
Object keys are never templated.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from workflows.expressions.errors import ExpressionError, ExpressionSyntaxError
from workflows.expressions.expression import Evaluation, Expression, compile_expression
from workflows.expressions.scanner import Embedded, ScanError, split_template

__all__ = ["Template", "compile_template", "json_pointer", "to_text"]

_JSON_SCALARS = (str, int, float, bool, type(None))


def json_pointer(path: Sequence[str | int]) -> str:
	"""The RFC 6901 JSON pointer for ``path`` (``["a", 0]`` → ``/a/0``; the root is ``""``)."""
	return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def _jq_numbers(value: Any) -> Any:
	# jq hands integral numbers back as ints (3.0 -> 3, 1e20 -> 100000000000000000000); do
	# the same here so the text does not depend on whether jq or the fast path produced it.
	if isinstance(value, float):
		return int(value) if value.is_integer() else value
	if isinstance(value, dict):
		return {key: _jq_numbers(item) for key, item in value.items()}
	if isinstance(value, list):
		return [_jq_numbers(item) for item in value]
	return value


def to_text(value: Any) -> str:
	"""How an interpolated value reads inside a string.

	Strings are inserted as they are, null as an empty string, anything else as compact JSON.
	"""
	if isinstance(value, str):
		return value
	if value is None:
		return ""
	return json.dumps(_jq_numbers(value), ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class _Whole:
	expression: Expression
	pointer: str


@dataclass(frozen=True, slots=True)
class _Interpolated:
	parts: tuple[str | Expression, ...]
	pointer: str


_Node: TypeAlias = "_Whole | _Interpolated | dict[str, _Node] | list[_Node] | str | int | float | bool | None"


class Template:
	"""A compiled template; get one from :func:`compile_template`."""

	__slots__ = ("_expressions", "_root")

	def __init__(self, root: _Node, expressions: list[Expression]) -> None:
		self._root = root
		self._expressions = expressions

	@property
	def expressions(self) -> list[Expression]:
		"""Every expression in the template, in document order."""
		return list(self._expressions)

	@property
	def is_static(self) -> bool:
		"""True when the template holds no expressions: it always evaluates to the same value."""
		return not self._expressions

	def evaluate(
		self, context: Mapping[str, Any], *, timeout: float | None = None, max_output_bytes: int | None = None
	) -> Any:
		"""Build the value, evaluating each expression against ``context``.

		Args:
			context: The evaluation context (see :func:`~workflows.expressions.context.build_context`).
			timeout: Seconds for the whole template; None uses :attr:`Limits.timeout`.
			max_output_bytes: Largest result of each expression; None uses the limit.

		Returns:
			A new JSON value; static parts are fresh copies.

		Raises:
			ExpressionError: As :meth:`Expression.evaluate`, with ``pointer`` set to where the
				failing expression sits in the template.
		"""
		return _build(self._root, Evaluation(context, timeout=timeout, max_output_bytes=max_output_bytes))

	def __repr__(self) -> str:
		return f"Template({len(self._expressions)} expressions)"


def _run(expression: Expression, pointer: str, evaluation: Evaluation) -> Any:
	try:
		return expression.run(evaluation)
	except ExpressionError as exc:
		exc.pointer = pointer
		raise


def _build(node: _Node, evaluation: Evaluation) -> Any:
	if isinstance(node, _Whole):
		return _run(node.expression, node.pointer, evaluation)
	if isinstance(node, _Interpolated):
		return "".join(
			part if isinstance(part, str) else to_text(_run(part, node.pointer, evaluation))
			for part in node.parts
		)
	if isinstance(node, dict):
		return {key: _build(child, evaluation) for key, child in node.items()}
	if isinstance(node, list):
		return [_build(child, evaluation) for child in node]
	return node


def _compile_at(source: str, pointer: str) -> Expression:
	try:
		return compile_expression(source)
	except ExpressionError as exc:
		raise exc.at(pointer=pointer) from None


def _compile_string(text: str, pointer: str, expressions: list[Expression]) -> _Node:
	if "${" not in text:
		return text
	try:
		parts = split_template(text)
	except ScanError as exc:
		raise ExpressionSyntaxError(str(exc), source=text[exc.position - 2 :], pointer=pointer) from None
	embedded = [part for part in parts if isinstance(part, Embedded)]
	if len(embedded) == 1 and all(isinstance(part, Embedded) or part.isspace() for part in parts):
		expression = _compile_at(embedded[0].source, pointer)
		expressions.append(expression)
		return _Whole(expression, pointer)
	compiled: list[str | Expression] = []
	for part in parts:
		if isinstance(part, str):
			compiled.append(part)
			continue
		expression = _compile_at(part.source, pointer)
		expressions.append(expression)
		compiled.append(expression)
	if len(compiled) == 1 and isinstance(compiled[0], str):
		return compiled[0]
	return _Interpolated(tuple(compiled), pointer)


def _compile_node(value: Any, path: list[str | int], expressions: list[Expression]) -> _Node:
	if isinstance(value, str):
		return _compile_string(value, json_pointer(path), expressions)
	if isinstance(value, _JSON_SCALARS):
		return value
	if isinstance(value, Mapping):
		node: dict[str, _Node] = {}
		for key, child in value.items():
			if not isinstance(key, str):
				raise TypeError(f"template object keys must be strings; {json_pointer(path)!r} has {key!r}")
			path.append(key)
			node[key] = _compile_node(child, path, expressions)
			path.pop()
		return node
	if isinstance(value, list | tuple):
		items: list[_Node] = []
		for index, child in enumerate(value):
			path.append(index)
			items.append(_compile_node(child, path, expressions))
			path.pop()
		return items
	raise TypeError(f"templates hold JSON values; {json_pointer(path)!r} is a {type(value).__name__}")


def compile_template(value: Any) -> Template:
	"""Compile a JSON value whose strings may hold ``${ ... }`` expressions.

	Args:
		value: A dict, list, string, number, boolean or None, nested as deep as needed.

	Returns:
		The compiled template.

	Raises:
		ExpressionSyntaxError: An expression is invalid; ``pointer`` says where it sits.
		ExpressionError: Another compile failure, with ``pointer`` set.
		TypeError: ``value`` holds something that is not JSON.
	"""
	expressions: list[Expression] = []
	root = _compile_node(value, [], expressions)
	return Template(root, expressions)
