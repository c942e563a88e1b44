"""GraphQL errors: a clear message and ``extensions.code``, never a stack trace outside DEBUG.

The service errors of :mod:`workflows.errors` map to codes as they map to HTTP statuses in
REST: NOT_FOUND (404), PERMISSION_DENIED (403), CONFLICT (409), VALIDATION (400, with
``extensions.errors``: ``[{pointer, message, hint}]``). Refusals of the query budget carry
their own codes (:mod:`workflows.graphql.limits`); malformed documents are
GRAPHQL_PARSE_FAILED or GRAPHQL_VALIDATION_FAILED; anything else is INTERNAL_SERVER_ERROR
with a generic message and the request id to quote.
"""

from __future__ import annotations

from typing import Any

from graphene_django.views import HttpError
from graphql import GraphQLError, GraphQLSyntaxError

from workflows.context import request_id
from workflows.errors import Conflict, NotFound, PermissionDenied, ServiceError, ValidationFailed

__all__ = ["INTERNAL_MESSAGE", "StaleRevision", "error_payload", "is_unexpected"]

INTERNAL_MESSAGE = "An unexpected error occurred; it has been logged."

_CODES: list[tuple[type[ServiceError], str]] = [
	(ValidationFailed, "VALIDATION"),
	(NotFound, "NOT_FOUND"),
	(PermissionDenied, "PERMISSION_DENIED"),
	(Conflict, "CONFLICT"),
]


class StaleRevision(Conflict):
	"""An update named a draft revision that is no longer the current one (REST answers 412)."""

	def __init__(self, expected: int, current: int) -> None:
		self.current = current
		super().__init__(
			f"The workflow changed since you read it (revision {expected}, now {current}); "
			"reload it and apply your change again."
		)


def _cause(error: Exception) -> Exception | None:
	"""What a resolver raised, or None for errors of the document itself."""
	if isinstance(error, GraphQLError):
		return error.original_error
	return error


def is_unexpected(error: Exception) -> bool:
	"""Whether ``error`` is a bug (logged, answered generically) rather than the client's to fix."""
	cause = _cause(error)
	return cause is not None and not isinstance(cause, ServiceError | GraphQLError | HttpError)


def _service_extensions(cause: ServiceError) -> dict[str, Any]:
	code = next((code for cls, code in _CODES if isinstance(cause, cls)), "BAD_REQUEST")
	extensions: dict[str, Any] = {"code": code}
	if isinstance(cause, ValidationFailed):
		extensions["errors"] = [
			{"pointer": e.pointer, "message": e.message, "hint": e.hint} for e in cause.errors
		]
	elif isinstance(cause, PermissionDenied):
		extensions["permission"] = str(getattr(cause.perm, "value", cause.perm))
	elif isinstance(cause, StaleRevision):
		extensions["currentRevision"] = cause.current
	return extensions


def error_payload(error: Exception, *, debug: bool) -> dict[str, Any]:
	"""The JSON of one error in a response's ``errors``."""
	payload: dict[str, Any] = (
		dict(error.formatted) if isinstance(error, GraphQLError) else {"message": str(error)}
	)
	cause = _cause(error)
	extensions = dict(payload.get("extensions") or {})
	if isinstance(cause, ServiceError):
		extensions.update(_service_extensions(cause))
	elif isinstance(cause, GraphQLError | HttpError):
		extensions.setdefault("code", "BAD_REQUEST")
	elif is_unexpected(error):
		extensions["code"] = "INTERNAL_SERVER_ERROR"
		if request_id.get():
			extensions["requestId"] = request_id.get()
		if not debug:
			payload["message"] = INTERNAL_MESSAGE
	elif isinstance(error, GraphQLSyntaxError):
		extensions["code"] = "GRAPHQL_PARSE_FAILED"
	else:
		extensions.setdefault("code", "GRAPHQL_VALIDATION_FAILED")
	payload["extensions"] = extensions
	return payload
