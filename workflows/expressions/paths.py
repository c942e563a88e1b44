"""Plain path expressions (``.a.b``, ``$steps.fetch.output.body``) evaluated in pure Python.

Most mappings in real workflows are paths, and answering them without a sandbox round trip
costs microseconds instead of a hundred or more. The grammar is deliberately small and every
form it accepts means exactly what jq means by it (a property test compares the two)::

	path     := root step* | "$" NAME step*
	root     := "." | "." NAME | "." STRING | "." index
	step     := "." NAME | "." STRING | "." index | index | "?"
	index    := "[" WS (STRING | INT) WS "]"

``NAME`` is a jq identifier, ``STRING`` a jq string literal without interpolation, ``INT``
an integer without leading zeros. As in jq, a ``?`` right after a step suppresses that step's
error only (``.a.b?`` still fails when ``.a`` does); a further ``?`` (``.a.b??``), or one after
a bare root, is ``try`` around everything before it. Anything else (pipes, ``..``, slices,
``$ENV``) is left to jq in the sandbox. When a step would fail without a ``?`` to suppress it,
:meth:`PathExpression.resolve` raises :class:`NeedsJq` so the caller can let jq produce its
own error message.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["EMPTY", "NeedsJq", "PathExpression", "parse_path"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STRING = re.compile(r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"')
_INDEX = re.compile(
	r'\[[ \t\r\n]*(?:(?P<string>"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*")'
	r"|(?P<int>-?(?:0|[1-9][0-9]{0,8})))[ \t\r\n]*\]"
)
# jq gives these variables a meaning of its own; leave them to jq.
_SPECIAL_VARIABLES: Final = frozenset({"ENV", "__loc__", "__prog_args"})


class _Empty(enum.Enum):
	EMPTY = "EMPTY"


EMPTY: Final = _Empty.EMPTY
"""Returned by :meth:`PathExpression.resolve` when a ``?`` suppressed an error: no output."""


class NeedsJq(Exception):  # noqa: N818 - a signal, not an error
	"""A step fails outside any ``?``; only jq knows the exact message to report."""


@dataclass(frozen=True, slots=True)
class PathExpression:
	"""A parsed path: start at the input (``variable`` None) or a variable, then index.

	Attributes:
		variable: The variable the path starts from, or None for the input ``.``.
		steps: Object keys (str) and array indexes (int), in order.
		optional: For each step, whether a ``?`` right after it suppresses its error.
		try_before: Errors in the first ``try_before`` steps yield no output (a ``?`` that
			follows another ``?``, or the root, wraps everything before it in ``try``).
	"""

	variable: str | None
	steps: tuple[str | int, ...]
	optional: tuple[bool, ...]
	try_before: int = 0

	@property
	def variables(self) -> frozenset[str]:
		"""The variables this path reads."""
		return frozenset() if self.variable is None else frozenset({self.variable})

	def resolve(self, context: Mapping[str, Any]) -> Any:
		"""Follow the path through ``context``.

		Args:
			context: The evaluation context; it is the input ``.`` and holds the variables.

		Returns:
			The value found (None where jq gives null), or :data:`EMPTY` when a ``?``
			suppressed an error.

		Raises:
			NeedsJq: A step fails and no ``?`` covers it.
			KeyError: The path starts from a variable the context lacks.
		"""
		value: Any = context if self.variable is None else context[self.variable]
		for position, key in enumerate(self.steps):
			if value is None:
				# null indexed by anything is null; nothing later can fail either.
				return None
			if isinstance(key, str):
				if isinstance(value, Mapping):
					value = value.get(key)
					continue
			elif isinstance(value, list | tuple):
				index = key + len(value) if key < 0 else key
				value = value[index] if 0 <= index < len(value) else None
				continue
			if self.optional[position] or position < self.try_before:
				return EMPTY
			raise NeedsJq
		return value


def _decode_string(literal: str) -> str | None:
	decoded: str = json.loads(literal)
	try:
		decoded.encode("utf-8")
	except UnicodeEncodeError:
		# A lone surrogate escape: jq substitutes U+FFFD; let jq handle it.
		return None
	return decoded


def parse_path(source: str) -> PathExpression | None:
	"""Parse ``source`` as a plain path expression.

	Args:
		source: jq source without the ``${ }`` wrapper and surrounding whitespace.

	Returns:
		The parsed path, or None when the source is anything else (jq then evaluates it).
	"""
	variable: str | None = None
	steps: list[str | int] = []
	optional: list[bool] = []
	try_before = 0
	# Whether the previous token was a step, so a "?" now belongs to that step alone.
	after_step = False
	length = len(source)
	if source.startswith("$"):
		match = _NAME.match(source, 1)
		if match is None or match.group() in _SPECIAL_VARIABLES:
			return None
		variable = match.group()
		index = match.end()
		if source.startswith("::", index):
			return None
	elif source.startswith("."):
		index = 1
		if index < length and source[index] not in '"[?' and not _NAME.match(source, index):
			return None
	else:
		return None
	root_dot = variable is None
	while index < length:
		char = source[index]
		if char == "?":
			if after_step:
				optional[-1] = True
			else:
				try_before = len(steps)
			after_step = root_dot = False
			index += 1
			continue
		after_step = True
		dotted = root_dot or char == "."
		if char == "." and not root_dot:
			index += 1
		root_dot = False
		if dotted and (match := _NAME.match(source, index)):
			steps.append(match.group())
			optional.append(False)
			index = match.end()
			continue
		if dotted and (match := _STRING.match(source, index)):
			key = _decode_string(match.group())
			if key is None:
				return None
			steps.append(key)
			optional.append(False)
			index = match.end()
			continue
		if match := _INDEX.match(source, index):
			if (literal := match.group("string")) is not None:
				key = _decode_string(literal)
				if key is None:
					return None
				steps.append(key)
			else:
				steps.append(int(match.group("int")))
			optional.append(False)
			index = match.end()
			continue
		return None
	return PathExpression(variable, tuple(steps), tuple(optional), try_before)
