"""The webhook services called directly (as GraphQL or a shell would): validation and lookups."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from workflows.errors import NotFound, PermissionDenied, ValidationFailed
from workflows.models import Tenant, User, WebhookSubscription
from workflows.roles import Role
from workflows.services.webhooks import (
	IssuedWebhook,
	webhook_create,
	webhook_delete,
	webhook_ping,
	webhook_update,
)

pytestmark = pytest.mark.django_db

HOOK = "https://hooks.example.com/apg"


@pytest.mark.parametrize(
	("fields", "pointers"),
	[
		({"event_types": "run.failed"}, {"/event_types"}),
		({"event_types": ["*"] * 51}, {"/event_types"}),
		({"event_types": [42]}, {"/event_types/0"}),
		({"description": None}, {"/description"}),
		({"description": "x" * 501, "url": None}, {"/description", "/url"}),
	],
)
def test_every_invalid_field_is_reported_at_once(
	tenant: Tenant, owner: User, fields: dict[str, Any], pointers: set[str]
) -> None:
	values: dict[str, Any] = {"url": HOOK, "event_types": ["*"], "description": ""} | fields

	with pytest.raises(ValidationFailed) as caught:
		webhook_create(actor=owner, tenant=tenant, **values)

	assert {e.pointer for e in caught.value.errors} == pointers
	assert not WebhookSubscription.objects.for_tenant(tenant).exists()


def test_a_subscription_deleted_meanwhile_is_not_found(tenant: Tenant, owner: User) -> None:
	subscription = webhook_create(actor=owner, tenant=tenant, url=HOOK, event_types=["*"]).subscription
	webhook_delete(actor=owner, subscription=subscription)

	with pytest.raises(NotFound):
		webhook_update(actor=owner, subscription=subscription, description="too late")
	with pytest.raises(NotFound):
		webhook_ping(actor=owner, subscription=subscription)


def test_only_admins_and_owners_manage_webhooks(
	tenant: Tenant, owner: User, member_factory: Callable[..., User]
) -> None:
	allowed = [
		webhook_create(actor=member_factory(tenant, role), tenant=tenant, url=HOOK, event_types=["*"])
		for role in (Role.ADMIN, Role.OWNER)
	]

	for role in (Role.VIEWER, Role.EDITOR, Role.OPERATOR):
		with pytest.raises(PermissionDenied):
			webhook_create(actor=member_factory(tenant, role), tenant=tenant, url=HOOK, event_types=["*"])
	assert all(isinstance(issued, IssuedWebhook) for issued in allowed)
	assert WebhookSubscription.objects.for_tenant(tenant).count() == 2


def test_subscriptions_and_deliveries_read_well_in_the_admin_and_logs(tenant: Tenant, owner: User) -> None:
	subscription = webhook_create(actor=owner, tenant=tenant, url=HOOK, event_types=["*"]).subscription
	delivery = webhook_ping(actor=owner, subscription=subscription)

	assert str(subscription) == HOOK
	assert str(delivery) == f"webhook.ping -> {subscription.pk} (pending)"
