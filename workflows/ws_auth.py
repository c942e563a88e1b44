"""WebSocket authentication: a session cookie, or an API token in a header or subprotocol.

Browsers cannot set headers on a WebSocket, so a script in a page sends the token as a
subprotocol: ``new WebSocket(url, ["apg.v1", "apg.token." + token])``. Tokens in the query
string are refused on purpose: URLs end up in proxy and access logs.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from channels.auth import AuthMiddleware
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from channels.sessions import CookieMiddleware
from django.conf import settings

from workflows.authentication import parse_bearer, token_user
from workflows.selectors.tenancy import ACTIVE_TENANT_SESSION_KEY, tenant_list_for_user

__all__ = [
	"TOKEN_SUBPROTOCOL_PREFIX",
	"HandshakeSessionMiddleware",
	"TenantAuthMiddleware",
	"tenant_auth_stack",
]

TOKEN_SUBPROTOCOL_PREFIX = "apg.token."


def _raw_token(scope: dict[str, Any]) -> str | None:
	for name, value in scope.get("headers", []):
		if name == b"authorization":
			return parse_bearer(value)
	for proto in scope.get("subprotocols", []):
		if proto.startswith(TOKEN_SUBPROTOCOL_PREFIX):
			return proto.removeprefix(TOKEN_SUBPROTOCOL_PREFIX)
	return None


@database_sync_to_async
def _resolve(scope: dict[str, Any], raw: str | None) -> tuple[Any, Any, bool]:
	"""(user, tenant, token_failed)."""
	if raw is not None:
		found = token_user(raw) if raw else None
		if found is None:
			return None, None, True
		user, token = found
		return user, token.tenant, False
	user = scope.get("user")
	if user is None or not user.is_authenticated:
		return user, None, False
	tenants = tenant_list_for_user(user=user)
	session = scope.get("session")
	chosen = session.get(ACTIVE_TENANT_SESSION_KEY) if session is not None else None
	tenant = (tenants.filter(pk=chosen).first() if chosen else None) or tenants.first()
	return user, tenant, False


class TenantAuthMiddleware(BaseMiddleware):
	"""Put ``user``, ``tenant`` and ``auth_failed`` into the scope; consumers refuse what they must."""

	async def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
		user, tenant, failed = await _resolve(scope, _raw_token(scope))
		scope = {**scope, "tenant": tenant, "auth_failed": failed}
		if user is not None:
			scope["user"] = user
		return await super().__call__(scope, receive, send)


class HandshakeSessionMiddleware(BaseMiddleware):
	"""Put the session named by the handshake's cookie into the scope (read when first used).

	Channels' ``SessionMiddleware`` also wraps ``send`` to save a changed session, and asks the
	session whether it changed before every message sent: on a live stream that is every
	frame of every connection. A WebSocket consumer here never changes the session, so it is
	only read.
	"""

	async def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
		store = import_module(settings.SESSION_ENGINE).SessionStore
		session = store(scope["cookies"].get(settings.SESSION_COOKIE_NAME))  # from CookieMiddleware
		scope = {**scope, "session": session}
		return await super().__call__(scope, receive, send)


def tenant_auth_stack(inner: Any) -> Any:
	"""Session auth (cookies, read at the handshake) wrapped around token auth and tenant resolution."""
	return CookieMiddleware(HandshakeSessionMiddleware(AuthMiddleware(TenantAuthMiddleware(inner))))
