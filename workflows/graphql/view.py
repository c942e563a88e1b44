"""The GraphQL endpoint: same authentication (session or API token) and tenant as REST."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt
from graphene_django.views import GraphQLView

from workflows.authentication import INVALID_TOKEN_MESSAGE, parse_bearer, token_user
from workflows.http import bind_token_tenant

__all__ = ["TenantGraphQLView"]


def _noop_view(request: HttpRequest) -> HttpResponse:  # pragma: no cover - never called, only checked
	return HttpResponse()


@method_decorator(csrf_exempt, name="dispatch")
class TenantGraphQLView(GraphQLView):
	"""GraphQL over HTTP. Token requests are CSRF-exempt; session requests must carry the CSRF token."""

	def __init__(self, **kwargs: Any) -> None:
		kwargs.setdefault("graphiql", settings.DEBUG)
		super().__init__(**kwargs)

	def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
		raw = parse_bearer(request.headers.get("Authorization", ""))
		if raw is not None:
			found = token_user(raw) if raw else None
			if found is None:
				response = JsonResponse({"errors": [{"message": INVALID_TOKEN_MESSAGE}]}, status=401)
				response["WWW-Authenticate"] = 'Bearer realm="api"'
				return response
			user, token = found
			request.user = user
			bind_token_tenant(request, token.tenant)
		else:
			if not request.user.is_authenticated:
				return JsonResponse({"errors": [{"message": "Authentication required."}]}, status=401)
			if request.method == "POST":
				from django.middleware.csrf import CsrfViewMiddleware

				reason = CsrfViewMiddleware(lambda r: HttpResponse()).process_view(
					request, _noop_view, (), {}
				)
				if reason is not None:
					return JsonResponse({"errors": [{"message": "CSRF check failed."}]}, status=403)
		return super().dispatch(request, *args, **kwargs)
