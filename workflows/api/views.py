"""Foundation REST endpoints: token exchange, who am I, my tokens, audit events.

Tenant, member and role endpoints are in :mod:`workflows.api.admin`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth import authenticate
from django.db import transaction
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from workflows import context
from workflows.api.base import TenantAPIView
from workflows.api.definitions_serializers import ProblemSerializer
from workflows.api.serializers import (
	ApiTokenSerializer,
	AuditEventSerializer,
	TokenCreateSerializer,
	TokenObtainSerializer,
)
from workflows.models import Tenant, User
from workflows.permissions import membership_for
from workflows.roles import ROLE_PERMISSIONS, Role
from workflows.selectors.tenancy import api_token_list, audit_event_list
from workflows.services.tokens import api_token_create, api_token_revoke
from workflows.throttling import LoginThrottle

__all__ = [
	"AuditEventListView",
	"MeView",
	"TokenDetailView",
	"TokenListView",
	"TokenObtainView",
]

_BAD_CREDENTIALS = "Invalid credentials."

_IssuedTokenSerializer = inline_serializer(
	"IssuedToken",
	fields={
		"token": serializers.CharField(help_text="The token itself; shown once."),
		"id": serializers.UUIDField(),
		"name": serializers.CharField(),
		"tenant": serializers.SlugField(),
		"expires_at": serializers.DateTimeField(allow_null=True),
	},
)


def _issued(issued: Any) -> dict[str, Any]:
	token = issued.token
	return {
		"token": issued.raw,
		"id": str(token.pk),
		"name": token.name,
		"tenant": token.tenant.slug,
		"expires_at": token.expires_at,
	}


class TokenObtainView(APIView):
	"""Exchange username, password and tenant for an API token.

	Any wrong part (user, password, tenant, membership) gives the same 401; repeated failures
	from one client lock it out for LOGIN_LOCKOUT_SECONDS (429 with Retry-After).
	"""

	authentication_classes = ()
	permission_classes = [AllowAny]

	@extend_schema(
		request=TokenObtainSerializer,
		responses={
			201: _IssuedTokenSerializer,
			401: OpenApiResponse(ProblemSerializer, description="Wrong username, password or tenant."),
			429: OpenApiResponse(
				ProblemSerializer, description="Locked out after repeated failures; see Retry-After."
			),
		},
		tags=["auth"],
	)
	def post(self, request: Request) -> Response:
		data = TokenObtainSerializer(data=request.data)
		data.is_valid(raise_exception=True)
		values = data.validated_data
		throttle = LoginThrottle(username=values["username"], ip=context.client_ip.get())
		if throttle.is_locked():
			raise exceptions.Throttled(wait=throttle.window)
		user = authenticate(request._request, username=values["username"], password=values["password"])
		tenant = Tenant.objects.filter(slug=values["tenant"], is_active=True).first()
		if not isinstance(user, User) or tenant is None or membership_for(user=user, tenant=tenant) is None:
			throttle.record_failure()
			raise exceptions.AuthenticationFailed(_BAD_CREDENTIALS)
		throttle.reset()
		days = values.get("expires_in_days")
		with context.tenant_scope(tenant):
			issued = api_token_create(
				actor=user,
				tenant=tenant,
				name=values["name"],
				expires_in=timedelta(days=days) if days else None,
				never_expires=values["never_expires"],
			)
		return Response(_issued(issued), status=status.HTTP_201_CREATED)

	def get_authenticate_header(self, request: Request) -> str:
		return 'Bearer realm="api"'


class MeView(TenantAPIView):
	"""The caller, the tenant the request works in, their role and what it allows."""

	@extend_schema(
		responses=inline_serializer(
			"Me",
			fields={
				"id": serializers.UUIDField(),
				"username": serializers.CharField(),
				"tenant": inline_serializer(
					"MeTenant",
					fields={
						"id": serializers.UUIDField(),
						"slug": serializers.SlugField(),
						"name": serializers.CharField(),
					},
				),
				"role": serializers.CharField(allow_null=True),
				"permissions": serializers.ListField(child=serializers.CharField()),
			},
		),
		tags=["auth"],
	)
	def get(self, request: Request) -> Response:
		membership = membership_for(user=self.actor, tenant=self.tenant)
		role = Role(membership.role) if membership else None
		return Response(
			{
				"id": str(self.actor.pk),
				"username": self.actor.get_username(),
				"tenant": {"id": str(self.tenant.pk), "slug": self.tenant.slug, "name": self.tenant.name},
				"role": role.value if role else None,
				"permissions": sorted(p.value for p in ROLE_PERMISSIONS[role]) if role else [],
			}
		)


class _NewestFirst(CursorPagination):
	ordering = "-created_at"
	page_size = 50
	max_page_size = 500
	page_size_query_param = "limit"


class TokenListView(TenantAPIView):
	"""The caller's tokens in this tenant; create one (its value is in the response, once)."""

	@extend_schema(responses=ApiTokenSerializer(many=True), tags=["tokens"])
	def get(self, request: Request) -> Response:
		tokens = api_token_list(actor=self.actor, tenant=self.tenant)
		return Response(ApiTokenSerializer(tokens, many=True).data)

	@extend_schema(request=TokenCreateSerializer, responses={201: _IssuedTokenSerializer}, tags=["tokens"])
	def post(self, request: Request) -> Response:
		data = TokenCreateSerializer(data=request.data)
		data.is_valid(raise_exception=True)
		days = data.validated_data.get("expires_in_days")
		issued = api_token_create(
			actor=self.actor,
			tenant=self.tenant,
			name=data.validated_data["name"],
			expires_in=timedelta(days=days) if days else None,
			never_expires=data.validated_data["never_expires"],
		)
		return Response(_issued(issued), status=status.HTTP_201_CREATED)


class TokenDetailView(TenantAPIView):
	"""Revoke a token (``DELETE``): yours, or anyone's if you are an admin."""

	@extend_schema(responses={204: None}, tags=["tokens"])
	def delete(self, request: Request, token_id: str) -> Response:
		with transaction.atomic():
			api_token_revoke(actor=self.actor, tenant=self.tenant, token_id=token_id)
		return Response(status=status.HTTP_204_NO_CONTENT)


class _AuditCursor(_NewestFirst):
	ordering = ("-occurred_at", "-id")


class AuditEventListView(TenantAPIView):
	"""The tenant's audit trail, newest first (admins). Read-only: there is no write endpoint."""

	@extend_schema(
		parameters=[
			OpenApiParameter("action", str, description="e.g. membership.update"),
			OpenApiParameter("object_type", str, description="e.g. workflows.membership"),
			OpenApiParameter("object_id", str),
			OpenApiParameter("actor_id", str),
			OpenApiParameter("limit", int, description="Page size (1 to 500, default 50)."),
			OpenApiParameter("cursor", str, description="The `next` or `previous` link's cursor."),
		],
		responses={
			200: inline_serializer(
				"PaginatedAuditEventList",
				fields={
					"next": serializers.URLField(allow_null=True),
					"previous": serializers.URLField(allow_null=True),
					"results": AuditEventSerializer(many=True),
				},
			),
			403: OpenApiResponse(
				ProblemSerializer, description="Only admins and owners read the audit trail."
			),
		},
		tags=["audit"],
	)
	def get(self, request: Request) -> Response:
		params = request.query_params
		actor_id = params.get("actor_id") or None
		if actor_id is not None:
			try:
				actor_id = str(serializers.UUIDField().to_internal_value(actor_id))
			except serializers.ValidationError:
				raise serializers.ValidationError({"actor_id": ["Must be a UUID."]}) from None
		events = audit_event_list(
			actor=self.actor,
			tenant=self.tenant,
			action=params.get("action") or None,
			object_type=params.get("object_type") or None,
			object_id=params.get("object_id") or None,
			actor_id=actor_id,
		)
		paginator = _AuditCursor()
		page = paginator.paginate_queryset(events, request, view=self)
		return paginator.get_paginated_response(AuditEventSerializer(page, many=True).data)
