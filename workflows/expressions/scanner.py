"""Just enough of jq's lexer to find where an embedded ``${ ... }`` ends.

A ``}`` closes the expression only outside jq string literals, comments and nested object
braces, so ``${ {a: 1} | .a }`` and ``${ "}" }`` are one expression each. Strings may hold
``\\( ... )`` interpolations, which are jq code again and may hold strings of their own; the
scanner keeps an explicit stack instead of recursing, so no input can exhaust Python's stack.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Embedded", "ScanError", "find_closing_brace", "split_template"]

_STRING = '"'
_PAIRS = {"}": "{", ")": "("}


class ScanError(ValueError):
	"""The text is not a well-formed template; ``position`` is where the problem starts."""

	def __init__(self, message: str, position: int) -> None:
		super().__init__(message)
		self.position = position


@dataclass(frozen=True, slots=True)
class Embedded:
	"""A ``${ ... }`` found in a template string: its jq ``source`` (wrapper removed) and offset."""

	source: str
	offset: int


def _skip_comment(text: str, index: int) -> int:
	"""Index just past the comment starting at ``index`` (jq 1.7.1: a backslash continues it)."""
	length = len(text)
	while index < length:
		newline = text.find("\n", index)
		if newline == -1:
			return length
		backslashes = 0
		while text[newline - 1 - backslashes] == "\\":
			backslashes += 1
		if backslashes % 2 == 0:
			return newline + 1
		index = newline + 1
	return length


def find_closing_brace(text: str, start: int) -> int:
	"""Find the ``}`` that closes jq code beginning at ``start``.

	Args:
		text: Text holding the code, e.g. a template string.
		start: Index just after the opening ``${``.

	Returns:
		The index of the closing ``}``.

	Raises:
		ScanError: The code ends (inside a string, comment or nested braces) before the ``}``.
	"""
	stack: list[tuple[str, int]] = []
	mode, depth = "}", 0
	index, length = start, len(text)
	while index < length:
		char = text[index]
		if mode == _STRING:
			if char == "\\":
				if text.startswith("(", index + 1):
					stack.append((mode, depth))
					mode, depth = ")", 0
				index += 2
				continue
			if char == _STRING:
				mode, depth = stack.pop()
			index += 1
			continue
		if char == _STRING:
			stack.append((mode, depth))
			mode, depth = _STRING, 0
		elif char == "#":
			index = _skip_comment(text, index)
			continue
		elif char == _PAIRS[mode]:
			depth += 1
		elif char == mode:
			if depth:
				depth -= 1
			elif stack:
				mode, depth = stack.pop()
			else:
				return index
		index += 1
	if mode == _STRING:
		raise ScanError("unterminated string literal inside ${ ... }", start)
	raise ScanError("missing } to close ${ ... }", start)


def split_template(text: str) -> list[str | Embedded]:
	"""Split a template string into literal text and embedded expressions.

	``$${`` is a literal ``${``. Adjacent literal pieces are merged, and empty ones dropped.

	Args:
		text: The template string.

	Returns:
		Literal strings and :class:`Embedded` expressions in order.

	Raises:
		ScanError: An embedded expression is not terminated.
	"""
	parts: list[str | Embedded] = []
	literal: list[str] = []
	index = 0
	while True:
		found = text.find("${", index)
		if found == -1:
			literal.append(text[index:])
			break
		if found > 0 and text[found - 1] == "$":
			literal.append(text[index : found - 1] + "${")
			index = found + 2
			continue
		literal.append(text[index:found])
		end = find_closing_brace(text, found + 2)
		if piece := "".join(literal):
			parts.append(piece)
		literal.clear()
		parts.append(Embedded(text[found + 2 : end].strip(), found))
		index = end + 1
	if piece := "".join(literal):
		parts.append(piece)
	return parts
