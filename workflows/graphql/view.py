"""The GraphQL endpoint: same authentication (session or API token) and tenant as REST.

Before a document executes, it is checked by the standard rules and by the query budget
(:mod:`workflows.graphql.limits`); every error leaves as ``{message, extensions.code}``
(:mod:`workflows.graphql.errors`).
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt
from graphene_django.views import GraphQLView
from graphql import specified_rules

from workflows.api.throttles import graphql_throttle_response
from workflows.authentication import INVALID_TOKEN_MESSAGE, parse_bearer, token_user
from workflows.graphql.errors import error_payload, is_unexpected
from workflows.graphql.limits import Budget, budget_rule
from workflows.http import bind_token_tenant

__all__ = ["TenantGraphQLView"]


def _noop_view(request: HttpRequest) -> HttpResponse:  # pragma: no cover - never called, only checked
	return HttpResponse()


def _refusal(message: str, code: str, status: int) -> JsonResponse:
	return JsonResponse({"errors": [{"message": message, "extensions": {"code": code}}]}, status=status)


@method_decorator(csrf_exempt, name="dispatch")
class TenantGraphQLView(GraphQLView):
	"""GraphQL over HTTP. Token requests are CSRF-exempt; session requests must carry the CSRF token."""

	logger = logging.getLogger("apg.graphql")

	def __init__(self, **kwargs: Any) -> None:
		kwargs.setdefault("graphiql", settings.DEBUG)
		super().__init__(**kwargs)

	def execute_graphql_request(
		self,
		request: HttpRequest,
		data: Any,
		query: Any,
		variables: Any,
		operation_name: Any,
		show_graphiql: bool = False,
	) -> Any:
		# Django makes a view instance per request: the rules may carry this request's variables,
		# which give the ``first`` of a page asked for as ``first: $n``.
		sent = variables if isinstance(variables, dict) else {}
		self.validation_rules = (*specified_rules, budget_rule(Budget.from_settings(), sent))
		return super().execute_graphql_request(request, data, query, variables, operation_name, show_graphiql)

	@staticmethod
	def format_error(error: Exception) -> dict[str, Any]:
		if is_unexpected(error):
			TenantGraphQLView._log_unexpected(error)
		return error_payload(error, debug=settings.DEBUG)

	@classmethod
	def _log_unexpected(cls, error: Exception) -> None:
		cause = getattr(error, "original_error", None) or error
		cls.logger.error(
			"unexpected GraphQL error at %s: %s",
			".".join(str(p) for p in getattr(error, "path", None) or []) or "(document)",
			type(cause).__name__,
			exc_info=cause,
			extra={"graphql_path": getattr(error, "path", None)},
		)

	def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
		raw = parse_bearer(request.headers.get("Authorization", ""))
		if raw is not None:
			found = token_user(raw) if raw else None
			if found is None:
				response = _refusal(INVALID_TOKEN_MESSAGE, "UNAUTHENTICATED", 401)
				response["WWW-Authenticate"] = 'Bearer realm="api"'
				return response
			user, token = found
			request.user = user
			bind_token_tenant(request, token.tenant)
		else:
			token = None
			if not request.user.is_authenticated:
				return _refusal("Authentication required.", "UNAUTHENTICATED", 401)
			if request.method == "POST":
				from django.middleware.csrf import CsrfViewMiddleware

				reason = CsrfViewMiddleware(lambda r: HttpResponse()).process_view(
					request, _noop_view, (), {}
				)
				if reason is not None:
					return _refusal("CSRF check failed.", "FORBIDDEN", 403)
		# The same per-token (or per-user) and per-tenant rate limits as REST, on shared counters.
		throttled = graphql_throttle_response(request, token=token)
		if throttled is not None:
			return throttled
		return super().dispatch(request, *args, **kwargs)
