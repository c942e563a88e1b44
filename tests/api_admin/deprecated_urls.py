"""Test-only routes: the real ones plus a deprecated alias, to check the deprecation headers."""

from __future__ import annotations

from datetime import date

from django.urls import include, path
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from workflows.api.base import TenantAPIView
from workflows.api.versioning import deprecated


@deprecated(
	announced=date(2026, 1, 5),
	sunset=date(2026, 9, 1),
	link="https://apg-workflows.dev/docs/api_versioning#old-me",
	successor="/api/v1/me/",
)
class OldMeView(TenantAPIView):
	"""A retired alias of /me/ (tests only)."""

	@extend_schema(responses=inline_serializer("OldMe", fields={"tenant": serializers.SlugField()}))
	def get(self, request: Request) -> Response:
		return Response(
			{"tenant": self.tenant.slug}, headers={"Link": '</api/v1/old-me/?page=2>; rel="next"'}
		)


deprecated_patterns = [path("api/v1/old-me/", OldMeView.as_view(), name="old-me")]
urlpatterns = [*deprecated_patterns, path("", include("config.urls"))]
