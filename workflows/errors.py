"""Domain errors raised by services; every interface turns them into its own error shape."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Conflict", "FieldError", "NotFound", "PermissionDenied", "ServiceError", "ValidationFailed"]


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
