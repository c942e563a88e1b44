"""REST endpoints for outgoing webhooks: subscriptions, their delivery log, redelivery, pings.

Every view needs ``webhook.manage`` (admins and owners), checked by the selector or service
it calls; another tenant's id is the same 404 as a missing one. See docs/webhooks.md.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

from workflows.api.base import TenantAPIView
from workflows.api.runs import problem_responses
from workflows.api.runs_serializers import EmptyRequestSerializer
from workflows.api.webhooks_serializers import (
	IssuedWebhookSerializer,
	WebhookCreateSerializer,
	WebhookDeliveryDetailSerializer,
	WebhookDeliveryQuerySerializer,
	WebhookDeliverySerializer,
	WebhookSerializer,
	WebhookUpdateSerializer,
)
from workflows.selectors.webhooks import webhook_deliveries, webhook_delivery_get, webhook_get, webhook_list
from workflows.services.webhooks import (
	IssuedWebhook,
	webhook_create,
	webhook_delete,
	webhook_disable,
	webhook_enable,
	webhook_ping,
	webhook_redeliver,
	webhook_rotate_secret,
	webhook_update,
)

__all__ = [
	"WebhookDeliveryDetailView",
	"WebhookDeliveryListView",
	"WebhookDetailView",
	"WebhookListView",
	"WebhookPingView",
	"WebhookRedeliverView",
	"WebhookRotateSecretView",
	"WebhookToggleView",
]

_TAGS = ["webhooks"]


def _parse(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
	parsed = serializer_class(data=data)
	parsed.is_valid(raise_exception=True)
	return dict(parsed.validated_data)


def _issued(issued: IssuedWebhook) -> dict[str, Any]:
	data = dict(WebhookSerializer(issued.subscription).data)
	data["secret"] = issued.secret
	return data


class _DeliveryCursor(CursorPagination):
	page_size = 50
	max_page_size = 500
	page_size_query_param = "limit"
	ordering = ("-created_at", "-id")


class WebhookListView(TenantAPIView):
	"""The tenant's webhook subscriptions; subscribe a URL (its secret is in the response, once)."""

	@extend_schema(
		operation_id="webhooks_list",
		responses={200: WebhookSerializer(many=True), **problem_responses(403)},
		tags=_TAGS,
	)
	def get(self, request: Request) -> Response:
		subscriptions = webhook_list(actor=self.actor, tenant=self.tenant)
		return Response(WebhookSerializer(subscriptions, many=True).data)

	@extend_schema(
		operation_id="webhooks_create",
		request=WebhookCreateSerializer,
		responses={201: IssuedWebhookSerializer, **problem_responses(400, 403, 409)},
		tags=_TAGS,
	)
	def post(self, request: Request) -> Response:
		values = _parse(WebhookCreateSerializer, request.data)
		issued = webhook_create(actor=self.actor, tenant=self.tenant, **values)
		return Response(_issued(issued), status=status.HTTP_201_CREATED)


class WebhookDetailView(TenantAPIView):
	"""One subscription: read, change (``PATCH``), delete."""

	@extend_schema(
		operation_id="webhooks_retrieve",
		responses={200: WebhookSerializer, **problem_responses(403, 404)},
		tags=_TAGS,
	)
	def get(self, request: Request, webhook_id: str) -> Response:
		subscription = webhook_get(actor=self.actor, tenant=self.tenant, webhook_id=webhook_id)
		return Response(WebhookSerializer(subscription).data)

	@extend_schema(
		operation_id="webhooks_update",
		request=WebhookUpdateSerializer,
		responses={200: WebhookSerializer, **problem_responses(400, 403, 404)},
		tags=_TAGS,
	)
	def patch(self, request: Request, webhook_id: str) -> Response:
		values = _parse(WebhookUpdateSerializer, request.data)
		subscription = webhook_get(actor=self.actor, tenant=self.tenant, webhook_id=webhook_id)
		changed = webhook_update(actor=self.actor, subscription=subscription, **values)
		return Response(WebhookSerializer(changed).data)

	@extend_schema(
		operation_id="webhooks_destroy",
		responses={204: None, **problem_responses(403, 404)},
		tags=_TAGS,
	)
	def delete(self, request: Request, webhook_id: str) -> Response:
		subscription = webhook_get(actor=self.actor, tenant=self.tenant, webhook_id=webhook_id)
		webhook_delete(actor=self.actor, subscription=subscription)
		return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookRotateSecretView(TenantAPIView):
	"""Issue a new signing secret (in this response only); the old one stops at once."""

	@extend_schema(
		operation_id="webhooks_rotate_secret",
		request=EmptyRequestSerializer,
		responses={200: IssuedWebhookSerializer, **problem_responses(400, 403, 404)},
		tags=_TAGS,
	)
	def post(self, request: Request, webhook_id: str) -> Response:
		_parse(EmptyRequestSerializer, request.data)
		subscription = webhook_get(actor=self.actor, tenant=self.tenant, webhook_id=webhook_id)
		return Response(_issued(webhook_rotate_secret(actor=self.actor, subscription=subscription)))


class WebhookToggleView(TenantAPIView):
	"""Enable (resetting the failure count) or disable a subscription (``verb`` is set per route)."""

	verb: str = "enable"

	@extend_schema(
		request=EmptyRequestSerializer,
		responses={200: WebhookSerializer, **problem_responses(400, 403, 404)},
		tags=_TAGS,
	)
	def post(self, request: Request, webhook_id: str) -> Response:
		_parse(EmptyRequestSerializer, request.data)
		subscription = webhook_get(actor=self.actor, tenant=self.tenant, webhook_id=webhook_id)
		change = webhook_enable if self.verb == "enable" else webhook_disable
		return Response(WebhookSerializer(change(actor=self.actor, subscription=subscription)).data)


class WebhookPingView(TenantAPIView):
	"""Queue a signed ``webhook.ping`` to the subscription's URL; follow the delivery for the result."""

	@extend_schema(
		operation_id="webhooks_ping",
		request=EmptyRequestSerializer,
		responses={202: WebhookDeliverySerializer, **problem_responses(400, 403, 404)},
		tags=_TAGS,
	)
	def post(self, request: Request, webhook_id: str) -> Response:
		_parse(EmptyRequestSerializer, request.data)
		subscription = webhook_get(actor=self.actor, tenant=self.tenant, webhook_id=webhook_id)
		delivery = webhook_ping(actor=self.actor, subscription=subscription)
		return Response(WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


class WebhookDeliveryListView(TenantAPIView):
	"""A subscription's delivery log, newest first, with cursor pagination."""

	@extend_schema(
		operation_id="webhooks_deliveries",
		parameters=[
			WebhookDeliveryQuerySerializer,
			OpenApiParameter("cursor", OpenApiTypes.STR, description="From `next` or `previous`."),
			OpenApiParameter("limit", OpenApiTypes.INT, description="Page size (default 50, at most 500)."),
		],
		responses={
			200: inline_serializer(
				"PaginatedWebhookDeliveryList",
				fields={
					"next": serializers.URLField(allow_null=True),
					"previous": serializers.URLField(allow_null=True),
					"results": WebhookDeliverySerializer(many=True),
				},
			),
			**problem_responses(400, 403, 404),
		},
		tags=_TAGS,
	)
	def get(self, request: Request, webhook_id: str) -> Response:
		filters = _parse(WebhookDeliveryQuerySerializer, request.query_params.dict())
		subscription = webhook_get(actor=self.actor, tenant=self.tenant, webhook_id=webhook_id)
		deliveries = webhook_deliveries(
			actor=self.actor, subscription=subscription, status=filters.get("status")
		)
		paginator = _DeliveryCursor()
		page = paginator.paginate_queryset(deliveries.order_by(), request, view=self)
		return paginator.get_paginated_response(WebhookDeliverySerializer(page, many=True).data)


class WebhookDeliveryDetailView(TenantAPIView):
	"""One delivery: the request as sent, the response excerpt, and every attempt."""

	@extend_schema(
		operation_id="webhook_deliveries_retrieve",
		responses={200: WebhookDeliveryDetailSerializer, **problem_responses(403, 404)},
		tags=_TAGS,
	)
	def get(self, request: Request, delivery_id: str) -> Response:
		delivery = webhook_delivery_get(actor=self.actor, tenant=self.tenant, delivery_id=delivery_id)
		return Response(WebhookDeliveryDetailSerializer(delivery).data)


class WebhookRedeliverView(TenantAPIView):
	"""Send a succeeded or dead delivery's payload again, as a new delivery."""

	@extend_schema(
		operation_id="webhook_deliveries_redeliver",
		request=EmptyRequestSerializer,
		responses={202: WebhookDeliverySerializer, **problem_responses(400, 403, 404, 409)},
		tags=_TAGS,
	)
	def post(self, request: Request, delivery_id: str) -> Response:
		_parse(EmptyRequestSerializer, request.data)
		delivery = webhook_delivery_get(actor=self.actor, tenant=self.tenant, delivery_id=delivery_id)
		again = webhook_redeliver(actor=self.actor, delivery=delivery)
		return Response(WebhookDeliverySerializer(again).data, status=status.HTTP_202_ACCEPTED)
