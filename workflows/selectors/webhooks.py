"""Reads of outgoing webhook subscriptions and their delivery log (admins: ``webhook.manage``)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from workflows.errors import NotFound
from workflows.models import Tenant, User, WebhookDelivery, WebhookSubscription
from workflows.permissions import require
from workflows.roles import Perm
from workflows.selectors.definitions import parse_uuid

__all__ = ["webhook_deliveries", "webhook_delivery_get", "webhook_get", "webhook_list"]


def webhook_list(*, actor: User, tenant: Tenant) -> QuerySet[WebhookSubscription]:
	"""The tenant's subscriptions, newest first."""
	require(actor=actor, tenant=tenant, perm=Perm.WEBHOOK_MANAGE)
	return WebhookSubscription.objects.for_tenant(tenant).order_by("-created_at", "-id")


def webhook_get(*, actor: User, tenant: Tenant, webhook_id: Any) -> WebhookSubscription:
	"""One subscription; missing, deleted and another tenant's are the same NotFound."""
	require(actor=actor, tenant=tenant, perm=Perm.WEBHOOK_MANAGE)
	pk = parse_uuid(webhook_id)
	subscription = (
		WebhookSubscription.objects.for_tenant(tenant).select_related("tenant").filter(pk=pk).first()
		if pk
		else None
	)
	if subscription is None:
		raise NotFound()
	return subscription


def webhook_deliveries(
	*, actor: User, subscription: WebhookSubscription, status: str | None = None
) -> QuerySet[WebhookDelivery]:
	"""A subscription's deliveries (newest first), of one status when given."""
	require(actor=actor, tenant=subscription.tenant, perm=Perm.WEBHOOK_MANAGE)
	deliveries = WebhookDelivery.objects.for_tenant(subscription.tenant).filter(subscription=subscription)
	if status:
		deliveries = deliveries.filter(status=status)
	return deliveries.order_by("-created_at", "-id")


def webhook_delivery_get(*, actor: User, tenant: Tenant, delivery_id: Any) -> WebhookDelivery:
	"""One delivery of a live subscription; missing and another tenant's are the same NotFound."""
	require(actor=actor, tenant=tenant, perm=Perm.WEBHOOK_MANAGE)
	pk = parse_uuid(delivery_id)
	delivery = (
		WebhookDelivery.objects.for_tenant(tenant)
		.select_related("tenant", "subscription", "subscription__tenant")
		.filter(pk=pk, subscription__deleted_at__isnull=True)
		.first()
		if pk
		else None
	)
	if delivery is None:
		raise NotFound()
	return delivery
