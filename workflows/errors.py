"""Domain errors raised by services; every interface turns them into its own error shape."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = [
	"Conflict",
	"FieldError",
	"NotFound",
	"PermissionDenied",
	"ServiceError",
	"ValidationFailed",
	"find_unstorable",
	"refuse_unstorable",
]


class ServiceError(Exception):
	"""Base of errors a client can act on (never a bug)."""


class NotFound(ServiceError):
	"""Missing, or in a tenant the actor cannot see: the two are indistinguishable."""

	def __init__(self, message: str = "Not found.") -> None:
		super().__init__(message)


class PermissionDenied(ServiceError):
	"""The actor is a member but their role does not allow the action."""

	def __init__(self, perm: object, message: str | None = None) -> None:
		self.perm = perm
		super().__init__(message or f"Your role does not allow {getattr(perm, 'value', perm)}.")


class Conflict(ServiceError):
	"""The action does not fit the object's current state (e.g. approving a finished run)."""


@dataclass(frozen=True, slots=True)
class FieldError:
	"""One problem with one input field: where (a JSON pointer), what, and how to fix it."""

	pointer: str
	message: str
	hint: str = ""


class ValidationFailed(ServiceError):
	"""The input is invalid; ``errors`` lists every problem at once."""

	def __init__(self, errors: list[FieldError], message: str = "The input is invalid.") -> None:
		assert errors, "ValidationFailed needs at least one error"
		self.errors = errors
		super().__init__(message)

	@classmethod
	def single(cls, pointer: str, message: str, hint: str = "") -> ValidationFailed:
		"""A failure with one error."""
		return cls([FieldError(pointer, message, hint)], message)


# What PostgreSQL stores in neither text nor JSON: U+0000, and UTF-16 surrogates (which only
# occur unpaired in a Python string, e.g. from a JSON escape such as "\ud800").
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def find_unstorable(value: Any, pointer: str = "") -> str | None:
	"""The JSON pointer of the first string (or key) holding a character the database cannot store.

	Those are NUL (U+0000) and unpaired surrogates (U+D800 to U+DFFF): such input is refused up
	front rather than failing deep inside a write. A surrogate in a key is written as its
	escape in the pointer, which goes into a JSON answer.
	"""
	found = _find_unstorable(value, pointer)
	return None if found is None else found.encode("utf-8", "backslashreplace").decode("utf-8")


def _find_unstorable(value: Any, pointer: str) -> str | None:
	if isinstance(value, str):
		return pointer if _UNSTORABLE.search(value) else None
	if isinstance(value, dict):
		for key, item in value.items():
			here = f"{pointer}/{str(key).replace('~', '~0').replace('/', '~1')}"
			if _UNSTORABLE.search(str(key)):
				return here
			found = _find_unstorable(item, here)
			if found is not None:
				return found
	if isinstance(value, list):
		for index, item in enumerate(value):
			found = _find_unstorable(item, f"{pointer}/{index}")
			if found is not None:
				return found
	return None


def refuse_unstorable(value: Any, pointer: str) -> None:
	"""Refuse ``value`` (a string or JSON) when a string in it holds a character the database cannot store.

	Raises:
		ValidationFailed: naming the JSON pointer of the first such string.
	"""
	found = find_unstorable(value, pointer)
	if found is not None:
		raise ValidationFailed.single(
			found or "/",
			"Text may not contain the NUL character (U+0000) or an unpaired surrogate (U+D800 to U+DFFF).",
			"Remove it: the database cannot store it.",
		)
