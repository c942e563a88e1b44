"""Managing webhook subscriptions (admins, ``webhook.manage``), redelivering, pinging.

Each service validates every field at once, is audited (the signing secret never is), and
makes the engine's outbox re-read the tenant's subscriptions after commit.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from connectors.network import ALLOWED_SCHEMES, address_category, parse_ip
from workflows.crypto import encrypt
from workflows.errors import Conflict, FieldError, NotFound, ValidationFailed
from workflows.models import Tenant, User, WebhookDelivery, WebhookSubscription
from workflows.models.audit import snapshot
from workflows.models.webhooks import PING_EVENT_TYPE, WEBHOOK_EVENT_TYPES
from workflows.permissions import require
from workflows.roles import Perm
from workflows.services.audit import audit_record
from workflows.services.webhooks.outbox import dispatch_deliveries, forget_subscriptions

__all__ = [
	"MAX_EVENT_TYPES",
	"MAX_SUBSCRIPTIONS",
	"UNSET",
	"IssuedWebhook",
	"webhook_create",
	"webhook_delete",
	"webhook_disable",
	"webhook_enable",
	"webhook_ping",
	"webhook_redeliver",
	"webhook_rotate_secret",
	"webhook_update",
]

MAX_SUBSCRIPTIONS: Final = 50
"""Live subscriptions one tenant may have (each event fans out to every match)."""
MAX_EVENT_TYPES: Final = 50
_PATTERN_PREFIXES: Final = frozenset(t.split(".", 1)[0] for t in WEBHOOK_EVENT_TYPES)
_EXPOSED: Final = frozenset(WEBHOOK_EVENT_TYPES)


class _Unset(enum.Enum):
	UNSET = "UNSET"


UNSET: Final = _Unset.UNSET
"""Marks a :func:`webhook_update` argument that was not given."""


# --- validation ----------------------------------------------------------------------------------


def _clean_url(url: Any, errors: list[FieldError]) -> str:
	cleaned = url.strip() if isinstance(url, str) else ""
	hint = "e.g. https://example.com/hooks/apg"
	parts = urlsplit(cleaned)
	try:
		host = parts.hostname or ""
		parts.port  # noqa: B018 - raises ValueError for a port that is not a number
	except ValueError:
		host = ""
	if not cleaned or len(cleaned) > 2000 or any(c.isspace() for c in cleaned):
		errors.append(FieldError("/url", "A URL of 1 to 2000 characters without spaces is required.", hint))
	elif parts.scheme.lower() not in ALLOWED_SCHEMES or not host:
		errors.append(FieldError("/url", f"{cleaned!r} is not an absolute http:// or https:// URL.", hint))
	elif not settings.CONNECTOR_ALLOW_PRIVATE_NETWORKS:
		# Names are checked when each delivery connects (they may resolve differently then);
		# an address or localhost can be refused now, with a clearer message.
		literal = parse_ip(host)
		category = address_category(literal) if literal is not None else None
		if category is not None or host.rstrip(".") == "localhost":
			kind = category or "loopback"
			errors.append(
				FieldError(
					"/url",
					f"{host} is {'an' if kind[0] in 'aeiou' else 'a'} {kind} address: webhooks are only "
					"sent to public addresses, to protect internal services.",
					"Use a public URL (the server's operator can allow private networks).",
				)
			)
	return cleaned


def _clean_event_types(values: Any, errors: list[FieldError]) -> list[str]:
	hint = "Use exact types (run.failed), a prefix (run.*, approval.*) or *."
	if not isinstance(values, list) or not values or len(values) > MAX_EVENT_TYPES:
		errors.append(
			FieldError("/event_types", f"A list of 1 to {MAX_EVENT_TYPES} event types is required.", hint)
		)
		return []
	cleaned: list[str] = []
	for index, value in enumerate(values):
		pattern = value.strip() if isinstance(value, str) else ""
		known = (
			pattern == "*"
			or pattern in _EXPOSED
			or (pattern.endswith(".*") and pattern[:-2] in _PATTERN_PREFIXES)
		)
		if not known:
			errors.append(
				FieldError(
					f"/event_types/{index}",
					f"{value!r} is not an event type a webhook can receive.",
					f"{hint} Known types: {', '.join(WEBHOOK_EVENT_TYPES)}.",
				)
			)
		elif pattern not in cleaned:
			cleaned.append(pattern)
	return cleaned


def _clean_description(description: Any, errors: list[FieldError]) -> str:
	if not isinstance(description, str) or len(description) > 500:
		errors.append(FieldError("/description", "The description is text of at most 500 characters.", ""))
		return ""
	return description.strip()


def _validated(values: dict[str, Any]) -> dict[str, Any]:
	errors: list[FieldError] = []
	cleaned = {
		"url": _clean_url(values["url"], errors),
		"event_types": _clean_event_types(values["event_types"], errors),
		"description": _clean_description(values["description"], errors),
	}
	if errors:
		raise ValidationFailed(errors, f"The webhook subscription is invalid ({len(errors)} problem(s)).")
	return cleaned


# --- managing subscriptions ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IssuedWebhook:
	"""A subscription as created or re-keyed: ``secret`` is its signing secret, shown this once."""

	subscription: WebhookSubscription
	secret: str


def _locked(subscription: WebhookSubscription) -> WebhookSubscription:
	locked = (
		WebhookSubscription.objects.for_tenant(subscription.tenant)
		.select_for_update()
		.filter(pk=subscription.pk)
		.first()
	)
	if locked is None:
		raise NotFound()
	return locked


def _write(
	*, actor: User, subscription: WebhookSubscription, action: str, before: dict[str, Any], **extra: Any
) -> WebhookSubscription:
	subscription.updated_by = actor
	subscription.save()
	audit_record(
		actor=actor,
		tenant=subscription.tenant,
		action=action,
		obj=subscription,
		before=before,
		after=snapshot(subscription),
		extra=extra or None,
	)
	forget_subscriptions(subscription.tenant_id)
	return subscription


@transaction.atomic
def webhook_create(
	*, actor: User, tenant: Tenant, url: str, event_types: list[str], description: str = ""
) -> IssuedWebhook:
	"""Subscribe ``url`` to ``event_types``; the signing secret is in the result, this once.

	Raises:
		ValidationFailed: Every invalid field, with a JSON pointer and a hint.
		Conflict: The tenant has :data:`MAX_SUBSCRIPTIONS` subscriptions already.
	"""
	require(actor=actor, tenant=tenant, perm=Perm.WEBHOOK_MANAGE)
	cleaned = _validated({"url": url, "event_types": event_types, "description": description})
	if WebhookSubscription.objects.for_tenant(tenant).count() >= MAX_SUBSCRIPTIONS:
		raise Conflict(
			f"The organization has {MAX_SUBSCRIPTIONS} webhook subscriptions, the most allowed; "
			"delete one or widen one's event types instead."
		)
	secret = WebhookSubscription.new_secret()
	subscription = WebhookSubscription.objects.for_tenant(tenant).create(
		tenant=tenant, ciphertext=encrypt(secret), created_by=actor, updated_by=actor, **cleaned
	)
	audit_record(
		actor=actor, tenant=tenant, action="webhook.create", obj=subscription, after=snapshot(subscription)
	)
	forget_subscriptions(tenant.pk)
	return IssuedWebhook(subscription=subscription, secret=secret)


@transaction.atomic
def webhook_update(
	*,
	actor: User,
	subscription: WebhookSubscription,
	url: str | _Unset = UNSET,
	event_types: list[str] | _Unset = UNSET,
	description: str | _Unset = UNSET,
) -> WebhookSubscription:
	"""Change a subscription's URL, event types or description (deliveries already made keep theirs)."""
	require(actor=actor, tenant=subscription.tenant, perm=Perm.WEBHOOK_MANAGE)
	subscription = _locked(subscription)
	changes = {"url": url, "event_types": event_types, "description": description}
	values = {key: getattr(subscription, key) if value is UNSET else value for key, value in changes.items()}
	cleaned = _validated(values)
	before = snapshot(subscription)
	for key, value in cleaned.items():
		setattr(subscription, key, value)
	if snapshot(subscription) == before:
		return subscription
	return _write(actor=actor, subscription=subscription, action="webhook.update", before=before)


@transaction.atomic
def webhook_rotate_secret(*, actor: User, subscription: WebhookSubscription) -> IssuedWebhook:
	"""Issue a new signing secret; every attempt from now on is signed with it (the old one stops)."""
	require(actor=actor, tenant=subscription.tenant, perm=Perm.WEBHOOK_MANAGE)
	subscription = _locked(subscription)
	before = snapshot(subscription)
	secret = WebhookSubscription.new_secret()
	subscription.ciphertext = encrypt(secret)
	_write(
		actor=actor,
		subscription=subscription,
		action="webhook.rotate_secret",
		before=before,
		rotated="secret",
	)
	return IssuedWebhook(subscription=subscription, secret=secret)


@transaction.atomic
def webhook_enable(*, actor: User, subscription: WebhookSubscription) -> WebhookSubscription:
	"""Send deliveries again; the count of consecutive failures starts from zero."""
	require(actor=actor, tenant=subscription.tenant, perm=Perm.WEBHOOK_MANAGE)
	subscription = _locked(subscription)
	if subscription.active:
		return subscription
	before = snapshot(subscription)
	subscription.active = True
	subscription.disabled_at = None
	subscription.disabled_reason = ""
	subscription.consecutive_failures = 0
	subscription.failing_since = None
	return _write(actor=actor, subscription=subscription, action="webhook.enable", before=before)


@transaction.atomic
def webhook_disable(*, actor: User, subscription: WebhookSubscription) -> WebhookSubscription:
	"""Stop sending: no delivery is made for new events, and queued ones are not sent."""
	require(actor=actor, tenant=subscription.tenant, perm=Perm.WEBHOOK_MANAGE)
	subscription = _locked(subscription)
	if not subscription.active:
		return subscription
	before = snapshot(subscription)
	subscription.active = False
	subscription.disabled_at = timezone.now()
	subscription.disabled_reason = f"Disabled by {actor.get_username()}."
	return _write(actor=actor, subscription=subscription, action="webhook.disable", before=before)


@transaction.atomic
def webhook_delete(*, actor: User, subscription: WebhookSubscription) -> None:
	"""Soft-delete: nothing more is sent; admins can restore it."""
	require(actor=actor, tenant=subscription.tenant, perm=Perm.WEBHOOK_MANAGE)
	subscription = _locked(subscription)
	before = snapshot(subscription)
	subscription.deleted_at = timezone.now()
	_write(actor=actor, subscription=subscription, action="webhook.delete", before=before)


def _queue(delivery: WebhookDelivery) -> None:
	delivery_id = str(delivery.pk)
	transaction.on_commit(lambda: dispatch_deliveries([delivery_id]))


@transaction.atomic
def webhook_redeliver(*, actor: User, delivery: WebhookDelivery) -> WebhookDelivery:
	"""Send a delivery's payload again, as a new delivery (the original's log stays as it was).

	The payload and its ``id`` are the original's, so a receiver that deduplicates by
	``Webhook-Id`` sees the same event; the signature is made afresh.

	Raises:
		Conflict: The subscription is disabled (enable it first), or the delivery is still
			being retried (wait for it to succeed or give up).
	"""
	tenant = delivery.tenant
	require(actor=actor, tenant=tenant, perm=Perm.WEBHOOK_MANAGE)
	subscription = _locked(delivery.subscription)
	if not subscription.active:
		raise Conflict("The subscription is disabled; enable it first, then redeliver.")
	if delivery.status in (WebhookDelivery.Status.PENDING, WebhookDelivery.Status.FAILED):
		raise Conflict("This delivery is still being retried; redeliver it once it has succeeded or is dead.")
	now = timezone.now()
	again = WebhookDelivery.objects.for_tenant(tenant).create(
		tenant=tenant,
		subscription=subscription,
		event_id=delivery.event_id,
		event_type=delivery.event_type,
		run_id=delivery.run_id,
		payload=delivery.payload,
		next_attempt_at=now,
		dispatched_at=now,
		redelivery_of=delivery,
	)
	audit_record(
		actor=actor,
		tenant=tenant,
		action="webhook.redeliver",
		obj=subscription,
		extra={"delivery": str(delivery.pk), "redelivery": str(again.pk)},
	)
	_queue(again)
	return again


@transaction.atomic
def webhook_ping(*, actor: User, subscription: WebhookSubscription) -> WebhookDelivery:
	"""Queue a signed ``webhook.ping`` to the subscription's URL (also when it is disabled).

	A ping is attempted once, and its outcome neither counts as a failure nor enables or
	disables anything: it is for checking an endpoint and its signature verification.
	"""
	require(actor=actor, tenant=subscription.tenant, perm=Perm.WEBHOOK_MANAGE)
	subscription = _locked(subscription)
	tenant = subscription.tenant
	now = timezone.now()
	event_id = uuid.uuid4()
	payload = {
		"id": str(event_id),
		"type": PING_EVENT_TYPE,
		"occurred_at": now.isoformat(),
		"tenant": {"id": str(tenant.pk), "slug": tenant.slug},
		"data": {"subscription_id": str(subscription.pk), "requested_by": actor.get_username()},
	}
	delivery = WebhookDelivery.objects.for_tenant(tenant).create(
		tenant=tenant,
		subscription=subscription,
		event_id=event_id,
		event_type=PING_EVENT_TYPE,
		payload=payload,
		next_attempt_at=now,
		dispatched_at=now,
	)
	audit_record(
		actor=actor,
		tenant=tenant,
		action="webhook.ping",
		obj=subscription,
		extra={"delivery": str(delivery.pk)},
	)
	_queue(delivery)
	return delivery
