"""API token authentication for REST, GraphQL and WebSocket.

Clients send ``Authorization: Bearer apg_...``. Every failure (malformed, unknown, revoked,
expired, no longer a member) gets the same 401, so a caller cannot probe which it was.
"""

from __future__ import annotations

import logging
from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from workflows.http import bind_token_tenant
from workflows.models import ApiToken, User
from workflows.permissions import membership_remember
from workflows.services.tokens import api_token_authenticate, api_token_authenticate_member

__all__ = ["INVALID_TOKEN_MESSAGE", "ApiTokenAuthentication", "parse_bearer", "token_user"]

INVALID_TOKEN_MESSAGE = "Invalid or expired token."


def parse_bearer(header: bytes | str) -> str | None:
	"""The token of an ``Authorization: Bearer <token>`` header, '' when malformed, None when absent."""
	if isinstance(header, bytes):
		try:
			header = header.decode("latin-1")
		except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes any byte
			return ""
	parts = header.split()
	if not parts or parts[0].lower() != "bearer":
		return None
	if len(parts) != 2:
		return ""
	return parts[1]


class ApiTokenAuthentication(BaseAuthentication):
	"""DRF authentication by personal API token; binds the token's tenant to the request."""

	logger = logging.getLogger("apg.auth")

	def authenticate(self, request: Request) -> tuple[User, ApiToken] | None:
		raw = parse_bearer(get_authorization_header(request))
		if raw is None:
			return None
		found = api_token_authenticate_member(raw) if raw else None
		if found is None:
			self._log_token_rejected(raw)
			raise exceptions.AuthenticationFailed(INVALID_TOKEN_MESSAGE)
		token = found.token
		bind_token_tenant(request._request, token.tenant)
		# The user object is this request's own: permission checks reuse the membership.
		membership_remember(user=token.user, tenant=token.tenant, membership=found.membership)
		return token.user, token

	def authenticate_header(self, request: Request) -> str:
		return 'Bearer realm="api"'

	def _log_token_rejected(self, raw: str) -> None:
		self.logger.warning("API token rejected", extra={"token_prefix": raw[:10]})


def token_user(raw: str) -> tuple[User, ApiToken] | None:
	"""For non-DRF entry points (GraphQL view, WebSocket): the user and token, or None."""
	token = api_token_authenticate(raw)
	return None if token is None else (token.user, token)


class ApiTokenScheme(OpenApiAuthenticationExtension):
	"""Describes API token authentication in the OpenAPI document (a bearer token)."""

	target_class = "workflows.authentication.ApiTokenAuthentication"
	name = "apiToken"

	def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
		return {
			"type": "http",
			"scheme": "bearer",
			"bearerFormat": "apg_<token>",
			"description": "A personal API token.",
		}
