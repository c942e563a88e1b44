"""Request middleware: a request id and client address for logs and audit, and the active tenant."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from workflows import context
from workflows.http import set_request_tenant
from workflows.selectors.tenancy import active_tenant_for

__all__ = ["RequestContextMiddleware", "TenantMiddleware", "client_address"]

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
