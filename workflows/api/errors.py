"""Every API error as RFC 9457 problem details (``application/problem+json``).

Service errors map to HTTP statuses in one table; DRF's own errors keep their status.
Validation errors add ``errors``: a list of ``{pointer, message, hint}``. Outside DEBUG an
unexpected exception becomes a bare 500 problem with the request id, never a traceback.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import page_not_found
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from workflows.context import request_id
from workflows.errors import Conflict, NotFound, PermissionDenied, ServiceError, ValidationFailed

__all__ = ["PROBLEM_BASE", "not_found", "problem", "problem_exception_handler"]

PROBLEM_BASE = "https://apg-workflows.dev/problems/"

_SERVICE_STATUS: list[tuple[type[ServiceError], int, str]] = [
	(ValidationFailed, status.HTTP_400_BAD_REQUEST, "validation-error"),
	(NotFound, status.HTTP_404_NOT_FOUND, "not-found"),
	(PermissionDenied, status.HTTP_403_FORBIDDEN, "permission-denied"),
	(Conflict, status.HTTP_409_CONFLICT, "conflict"),
]

_TITLES = {
	400: "Bad request",
	401: "Not authenticated",
	403: "Forbidden",
	404: "Not found",
	405: "Method not allowed",
	406: "Not acceptable",
	409: "Conflict",
	412: "Precondition failed",
	413: "Request too large",
	415: "Unsupported media type",
	429: "Too many requests",
	500: "Internal server error",
}


def problem(
	*, status_code: int, detail: str, kind: str | None = None, errors: list[dict[str, str]] | None = None
) -> dict[str, Any]:
	"""A problem-details body."""
	body: dict[str, Any] = {
		"type": PROBLEM_BASE + (kind or str(status_code)),
		"title": _TITLES.get(status_code, "Error"),
		"status": status_code,
		"detail": detail,
	}
	if errors:
		body["errors"] = errors
	rid = request_id.get()
	if rid:
		body["request_id"] = rid
	return body


def _drf_errors(data: Any, pointer: str = "") -> list[dict[str, str]]:
	if isinstance(data, dict):
		out: list[dict[str, str]] = []
		for key, value in data.items():
			sub = pointer if key in ("non_field_errors", "detail") else f"{pointer}/{key}"
			out.extend(_drf_errors(value, sub))
		return out
	if isinstance(data, list):
		if all(not isinstance(item, dict | list) for item in data):
			return [{"pointer": pointer, "message": str(item)} for item in data]
		out = []
		for index, item in enumerate(data):
			out.extend(_drf_errors(item, f"{pointer}/{index}"))
		return out
	return [{"pointer": pointer, "message": str(data)}]


class _ProblemLogger:
	logger = logging.getLogger("apg.api")

	def _log_unhandled(self, exc: Exception, context: dict[str, Any]) -> None:
		view = context.get("view")
		self.logger.error("unhandled API error in %s", type(view).__name__ if view else "?", exc_info=exc)


_problem_logger = _ProblemLogger()


def _respond(body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
	response = Response(body, status=body["status"], headers=headers, content_type="application/problem+json")
	return response


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
	"""DRF exception handler producing problem+json for every error."""
	for cls, code, kind in _SERVICE_STATUS:
		if isinstance(exc, cls):
			errors = None
			if isinstance(exc, ValidationFailed):
				errors = [{"pointer": e.pointer, "message": e.message, "hint": e.hint} for e in exc.errors]
			return _respond(problem(status_code=code, detail=str(exc), kind=kind, errors=errors))
	if isinstance(exc, Http404):
		exc = exceptions.NotFound("Not found.")
	elif isinstance(exc, DjangoPermissionDenied):
		exc = exceptions.PermissionDenied()
	response = exception_handler(exc, context)
	if response is None:
		if settings.DEBUG:
			return None  # let Django's debug page show the traceback
		_problem_logger._log_unhandled(exc, context)
		return _respond(
			problem(
				status_code=500, detail="An unexpected error occurred; it has been logged.", kind="internal"
			)
		)
	assert isinstance(exc, exceptions.APIException)
	headers = {k: v for k, v in response.headers.items() if k in {"WWW-Authenticate", "Retry-After", "Allow"}}
	if isinstance(exc, exceptions.ValidationError):
		body = problem(
			status_code=response.status_code,
			detail="The request has invalid fields; see errors.",
			kind="validation-error",
			errors=_drf_errors(response.data),
		)
	else:
		detail = response.data.get("detail", str(exc)) if isinstance(response.data, dict) else str(exc)
		wait = getattr(exc, "wait", None)
		# A plain Throttled (the sign-in lockout) gets a uniform detail; subclasses such as the
		# rate limits' RateLimited already say which limit was hit.
		if type(exc) is exceptions.Throttled and wait is not None:
			detail = f"Too many requests; retry in {int(wait) + 1} seconds."
		body = problem(
			status_code=response.status_code, detail=str(detail), kind=exc.default_code.replace("_", "-")
		)
	return _respond(body, headers)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
	"""The site's 404 handler: problem+json under /api/ (a path no route matches), else the page."""
	if request.path.startswith("/api/"):
		body = problem(
			status_code=404,
			detail=(
				f"Nothing here: {request.path} is not an API endpoint, or an id in it is malformed "
				"(ids are UUIDs). The endpoints are listed at /api/v1/schema/."
			),
			kind="not-found",
		)
		return JsonResponse(body, status=404, content_type="application/problem+json")
	return page_not_found(request, exception or Http404())
