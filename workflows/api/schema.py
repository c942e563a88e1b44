"""The OpenAPI schema class of the REST API: every error response it can give, as problem+json.

Errors are produced in one place (:mod:`workflows.api.errors`), whatever a view declares, so
they are described in one place too: each operation's error responses are documented as
``application/problem+json``, and the errors every view of a kind can give (401 without a
token, 404 outside a tenant or for an unknown id, 400, 413 and 415 for a bad body, 403 for
a write a role or a missing CSRF token refuses, 429 over a rate limit) are added where the
view does not list them.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from rest_framework.permissions import AllowAny

from workflows.api.base import TenantAPIView
from workflows.api.definitions_serializers import ProblemSerializer

__all__ = ["PROBLEM_MEDIA_TYPE", "ProblemAutoSchema"]

PROBLEM_MEDIA_TYPE = "application/problem+json"

_DESCRIPTIONS = {
	400: "The request is invalid; `errors` lists each problem with a JSON pointer and a hint.",
	401: "Not authenticated: send `Authorization: Bearer apg_...` (or a session cookie).",
	403: "Your role does not allow this (or, with a session cookie, the CSRF token is missing).",
	404: "Not found, or in another organization (the two are indistinguishable).",
	413: "The request body is larger than the limit (API_MAX_BODY_BYTES).",
	415: "The body's Content-Type is not accepted; send `application/json`.",
	429: "Too many requests (a rate limit); retry after the seconds in `Retry-After`.",
}


class ProblemAutoSchema(AutoSchema):
	"""drf-spectacular's AutoSchema, plus the error responses every operation really gives."""

	def get_operation(
		self, path: str, path_regex: str, path_prefix: str, method: str, registry: Any
	) -> dict[str, Any] | None:
		operation = super().get_operation(path, path_regex, path_prefix, method, registry)
		if operation is None:
			return None
		responses: dict[str, Any] = operation["responses"]
		problem = {"schema": self.resolve_serializer(ProblemSerializer, "response").ref}
		for code, response in responses.items():
			if code.isdigit() and int(code) >= 400:
				content = response.setdefault("content", {})
				declared = content.pop("application/json", None)
				content.setdefault(PROBLEM_MEDIA_TYPE, declared or problem)
		for code in self._implied_errors(operation):
			responses.setdefault(
				str(code), {"description": _DESCRIPTIONS[code], "content": {PROBLEM_MEDIA_TYPE: problem}}
			)
		operation["responses"] = dict(sorted(responses.items()))
		return operation

	def _implied_errors(self, operation: dict[str, Any]) -> list[int]:
		parameters = operation.get("parameters", [])
		has_body = "requestBody" in operation
		codes: list[int] = []
		if has_body or any(p.get("in") in ("query", "header") for p in parameters):
			codes.append(400)
		if has_body:
			codes += [413, 415]
		if any(not isinstance(p, AllowAny) for p in self.view.get_permissions()):
			codes.append(401)
			if self.method not in ("GET", "HEAD", "OPTIONS"):
				codes.append(403)
		if isinstance(self.view, TenantAPIView) or any(p.get("in") == "path" for p in parameters):
			codes.append(404)
		if self.view.get_throttles():
			codes.append(429)
		return codes
