"""Errors raised while compiling or evaluating workflow expressions.

Every error carries the expression ``source`` and a readable ``message``; callers that know
where the expression sits in a workflow add that with :meth:`ExpressionError.at`, so the
text a user sees reads ``node 'charge', field 'input.amount': expression '.x | foo' failed:
jq: error: foo/0 is not defined``.
"""

from __future__ import annotations

import copy
from typing import Any, Self

__all__ = [
	"ExpressionError",
	"ExpressionMultipleValues",
	"ExpressionOutputTooLarge",
	"ExpressionRuntimeError",
	"ExpressionSandboxError",
	"ExpressionSyntaxError",
	"ExpressionTimeout",
	"UnknownSecretError",
	"format_bytes",
	"format_seconds",
]

_PREVIEW_CHARS = 120


def format_bytes(size: int) -> str:
	"""Render a byte count the way limits are usually written: ``1 MiB``, ``512 KiB``, ``100 bytes``."""
	for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
		if size >= scale and size % scale == 0:
			return f"{size // scale} {unit}"
	return f"{size} bytes"


def format_seconds(seconds: float) -> str:
	"""Render a duration limit as ``1.0 s`` or ``0.25 s``."""
	return f"{float(seconds)!r} s"


def _preview(source: str) -> str:
	flat = " ".join(source.split())
	if len(flat) > _PREVIEW_CHARS:
		return flat[: _PREVIEW_CHARS - 1] + "…"
	return flat


def _restore(cls: type[ExpressionError], state: dict[str, Any]) -> ExpressionError:
	error = cls.__new__(cls)
	error.__dict__.update(state)
	error.args = (state.get("message", ""),)
	return error


class ExpressionError(Exception):
	"""Base class of every expression failure.

	Attributes:
		message: What went wrong, without location (``jq: error: null (null) has no keys``).
		source: The jq source of the failing expression, or None when no expression is involved.
		node_id: The workflow node the expression belongs to, once known.
		field: The node field holding the expression (``input.amount``), once known.
		pointer: JSON pointer of the expression inside a template (``/headers/Authorization``).
	"""

	def __init__(
		self,
		message: str,
		*,
		source: str | None = None,
		node_id: str | None = None,
		field: str | None = None,
		pointer: str | None = None,
	) -> None:
		super().__init__(message)
		self.message = message
		self.source = source
		self.node_id = node_id
		self.field = field
		self.pointer = pointer

	def at(self, *, node_id: str | None = None, field: str | None = None, pointer: str | None = None) -> Self:
		"""Return a copy of this error with its location filled in.

		Args:
			node_id: The workflow node the expression belongs to.
			field: The node field holding the expression.
			pointer: JSON pointer of the expression inside a template.

		Returns:
			An error of the same class; arguments left as None keep the current value.
		"""
		located = copy.copy(self)
		if node_id is not None:
			located.node_id = node_id
		if field is not None:
			located.field = field
		if pointer is not None:
			located.pointer = pointer
		return located

	@property
	def location(self) -> str:
		"""Where the expression sits (``node 'charge', field 'input'``), or an empty string."""
		parts: list[str] = []
		if self.node_id is not None:
			parts.append(f"node '{self.node_id}'")
		if self.field is not None:
			parts.append(f"field '{self.field}'")
		if self.pointer is not None:
			parts.append(f"template path '{self.pointer or '/'}'")
		return ", ".join(parts)

	def __str__(self) -> str:
		what = (
			self.message
			if self.source is None
			else f"expression '{_preview(self.source)}' failed: {self.message}"
		)
		where = self.location
		return f"{where}: {what}" if where else what

	def __reduce__(self) -> tuple[Any, ...]:
		# Keyword-only constructor arguments defeat Exception's default pickling, and Celery
		# pickles exceptions raised inside tasks.
		return (_restore, (type(self), self.__dict__.copy()))


class ExpressionSyntaxError(ExpressionError):
	"""The expression is not valid jq, is empty, or is longer than the source limit."""


class ExpressionRuntimeError(ExpressionError):
	"""jq raised an error while evaluating (``null | keys``), or the context lacks a variable."""


class ExpressionMultipleValues(ExpressionError):
	"""The expression produced more than one value where one was expected.

	Attributes:
		count: How many values it produced (a lower bound when ``more`` is true).
		more: True when counting stopped early.
	"""

	def __init__(self, count: int, *, more: bool = False, source: str | None = None) -> None:
		amount = f"more than {count}" if more else str(count)
		super().__init__(f"produced {amount} values; wrap it in [ ... ] to collect them", source=source)
		self.count = count
		self.more = more


class ExpressionTimeout(ExpressionError):
	"""The expression ran longer than its time limit and its sandbox process was killed.

	Attributes:
		limit: The time limit in seconds.
	"""

	def __init__(self, limit: float, *, source: str | None = None) -> None:
		super().__init__(f"expression ran longer than {format_seconds(limit)} and was stopped", source=source)
		self.limit = limit


class ExpressionOutputTooLarge(ExpressionError):
	"""The expression's result, serialized as JSON, is larger than the output limit.

	Attributes:
		limit: The limit in bytes.
		size: The size of the result in bytes.
	"""

	def __init__(self, limit: int, size: int, *, source: str | None = None) -> None:
		super().__init__(
			f"result is {format_bytes(size)} of JSON, more than the {format_bytes(limit)} limit",
			source=source,
		)
		self.limit = limit
		self.size = size


class ExpressionSandboxError(ExpressionError):
	"""The sandbox process evaluating the expression died (usually the memory limit) or was unavailable."""


class UnknownSecretError(ExpressionError):
	"""A ``secret://<name>`` reference names a secret that does not exist.

	Attributes:
		name: The secret name that could not be resolved.
	"""

	def __init__(self, name: str) -> None:
		super().__init__(f"secret '{name}' is not defined (referenced as secret://{name})")
		self.name = name
