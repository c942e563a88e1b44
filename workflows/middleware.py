"""Request middleware: a request id and client address for logs and audit, and the active tenant."""

from __future__ import annotations

import io
import logging
import re
import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from workflows import context
from workflows.http import set_request_tenant
from workflows.selectors.tenancy import active_tenant_for

__all__ = ["RequestBodyLimitMiddleware", "RequestContextMiddleware", "TenantMiddleware", "client_address"]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def client_address(request: HttpRequest) -> str | None:
	"""The client's IP: REMOTE_ADDR, or the first X-Forwarded-For hop behind a trusted proxy."""
	if settings.TRUST_PROXY_HEADERS:
		forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
		if forwarded:
			return forwarded.split(",")[0].strip() or None
	return request.META.get("REMOTE_ADDR") or None


class RequestContextMiddleware:
	"""Bind a request id (the client's X-Request-ID when well-formed) and the client address.

	The id is echoed in the response so a user can quote it in a bug report, and is
	written into every log line and audit event of the request.
	"""

	logger = logging.getLogger("apg.request")

	def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
		self.get_response = get_response

	def __call__(self, request: HttpRequest) -> HttpResponse:
		supplied = request.headers.get("X-Request-ID", "")
		rid = supplied if _REQUEST_ID.match(supplied) else uuid.uuid4().hex
		rid_token = context.request_id.set(rid)
		ip_token = context.client_ip.set(client_address(request))
		started = time.perf_counter()
		try:
			response = self.get_response(request)
			response["X-Request-ID"] = rid
			self._log_request(request, response, time.perf_counter() - started)
			return response
		finally:
			context.client_ip.reset(ip_token)
			context.request_id.reset(rid_token)

	def _log_request(self, request: HttpRequest, response: HttpResponse, seconds: float) -> None:
		self.logger.info(
			"%s %s -> %s in %.1f ms",
			request.method,
			request.path,
			response.status_code,
			seconds * 1000,
			extra={"status": response.status_code, "duration_ms": round(seconds * 1000, 2)},
		)


class TenantMiddleware:
	"""Bind the signed-in user's active tenant for the request.

	Token-authenticated API requests bind the token's tenant in the authentication class;
	the binding made here is reset at the end of the request either way, so nothing leaks
	into the next request served by the same thread. Superusers in the admin read across
	tenants (the admin's named bypass).
	"""

	def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
		self.get_response = get_response

	def __call__(self, request: HttpRequest) -> HttpResponse:
		user = getattr(request, "user", None)
		tenant = active_tenant_for(request) if user is not None and user.is_authenticated else None
		set_request_tenant(request, tenant)
		token = context._tenant.set(tenant)
		try:
			if user is not None and user.is_superuser and request.path.startswith("/admin/"):
				with context.dangerously_unscoped():
					return self.get_response(request)
			return self.get_response(request)
		finally:
			context._tenant.reset(token)


class RequestBodyLimitMiddleware:
	"""Answer 413 (problem+json) to a body over API_MAX_BODY_BYTES on /api/, /graphql and /hooks/.

	The declared Content-Length is checked first; then the body is read, at most one byte
	past the limit, so a missing (chunked) or understated Content-Length cannot slip a larger
	body through. What was read is kept as the request's body, with Content-Length set to
	its real size, so the parsers behind see exactly the bytes that were checked (DRF would
	otherwise take a chunked body without Content-Length for an empty one).
	"""

	PREFIXES = ("/api/", "/graphql", "/hooks/")
	logger = logging.getLogger("apg.request")

	def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
		self.get_response = get_response

	def __call__(self, request: HttpRequest) -> HttpResponse:
		if not request.path.startswith(self.PREFIXES):
			return self.get_response(request)
		limit: int = settings.API_MAX_BODY_BYTES
		declared = request.META.get("CONTENT_LENGTH") or ""
		if declared.isdigit() and int(declared) > limit:
			return self._too_large(request, limit, int(declared))
		body = request.read(limit + 1)
		if len(body) > limit:
			return self._too_large(request, limit, None)
		request._body = body
		request._stream = io.BytesIO(body)
		request.META["CONTENT_LENGTH"] = str(len(body))
		return self.get_response(request)

	def _too_large(self, request: HttpRequest, limit: int, declared: int | None) -> HttpResponse:
		from workflows.api.errors import problem
		from workflows.expressions.errors import format_bytes

		self._log_body_too_large(request, limit, declared)
		size = f" ({declared} bytes)" if declared is not None else ""
		detail = (
			f"The request body{size} is larger than the limit of {format_bytes(limit)} ({limit} bytes, "
			"API_MAX_BODY_BYTES). Send less per request: split a bulk request into several smaller "
			"ones, or keep large data outside the request and pass a reference to it."
		)
		body = problem(status_code=413, detail=detail, kind="request-too-large")
		return JsonResponse(body, status=413, content_type="application/problem+json")

	def _log_body_too_large(self, request: HttpRequest, limit: int, declared: int | None) -> None:
		self.logger.warning(
			"request body over the limit refused: %s %s",
			request.method,
			request.path,
			extra={"limit_bytes": limit, "declared_bytes": declared},
		)
