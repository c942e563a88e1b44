"""Outgoing webhooks: a tenant's subscriptions to run and approval events, and the delivery log.

A :class:`WebhookSubscription` names a URL and the event types it wants; every matching
run event becomes a :class:`WebhookDelivery` row in the transaction that recorded the
event (a transactional outbox), and is POSTed, signed, after commit. Write them through
:mod:`workflows.services.webhooks` (subscriptions) and :mod:`workflows.webhook_tasks`
(delivery attempts) only.
"""

from __future__ import annotations

import secrets
from typing import ClassVar
from uuid import UUID

from django.db import models

from workflows.models.base import TenantOwnedModel, TenantScopedModel

__all__ = [
	"PING_EVENT_TYPE",
	"WEBHOOK_EVENT_TYPES",
	"WebhookDelivery",
	"WebhookSubscription",
	"event_type_matches",
]

WEBHOOK_EVENT_TYPES: tuple[str, ...] = (
	"run.started",
	"run.running",
	"run.waiting",
	"run.paused",
	"run.resumed",
	"run.retried",
	"run.timed_out",
	"run.compensating",
	"run.succeeded",
	"run.failed",
	"run.cancelled",
	"run.compensated",
	"run.compensation_failed",
	"approval.requested",
	"approval.escalated",
	"approval.decided",
)
"""The run events a subscription can ask for (step-level events are not sent: too many)."""

PING_EVENT_TYPE = "webhook.ping"
"""The type of a test delivery sent by hand; never subscribed to, always sent."""

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix that makes leaked secrets easy to spot


def event_type_matches(pattern: str, event_type: str) -> bool:
	"""Whether a subscription's ``pattern`` (``*``, ``run.*`` or an exact type) covers ``event_type``."""
	if pattern == "*":
		return True
	if pattern.endswith(".*"):
		return event_type.startswith(pattern[:-1])
	return pattern == event_type


class WebhookSubscription(TenantOwnedModel):
	"""A URL of the tenant's that receives signed POSTs for the event types it lists.

	``event_types`` holds exact types (``run.failed``), prefixes (``run.*``) or ``*``.
	The signing secret is stored encrypted (``ciphertext``, see :mod:`workflows.crypto`)
	and shown once, when it is issued. ``active`` is False once disabled, by hand or after
	too many consecutive failed attempts; ``disabled_reason`` then says why.
	"""

	url = models.URLField(max_length=2000)
	description = models.CharField(max_length=500, blank=True)
	event_types = models.JSONField(default=list)
	ciphertext = models.TextField()
	active = models.BooleanField(default=True)
	disabled_at = models.DateTimeField(null=True, blank=True)
	disabled_reason = models.CharField(max_length=500, blank=True)
	consecutive_failures = models.PositiveIntegerField(default=0)
	failing_since = models.DateTimeField(null=True, blank=True)
	last_success_at = models.DateTimeField(null=True, blank=True)

	class Meta:
		indexes: ClassVar = [
			models.Index(fields=["tenant", "-created_at"], name="webhooksub_tenant_recent"),
			# What the engine's outbox loads: a tenant's live, active subscriptions.
			models.Index(
				fields=["tenant"],
				condition=models.Q(active=True, deleted_at__isnull=True),
				name="webhooksub_tenant_active",
			),
		]

	def __str__(self) -> str:
		return self.url[:200]

	@staticmethod
	def new_secret() -> str:
		"""A signing secret (256 random bits)."""
		return SECRET_PREFIX + secrets.token_urlsafe(32)


class WebhookDelivery(TenantScopedModel):
	"""One event sent (or to be sent) to one subscription, with what came back.

	``pending`` waits for its first attempt, ``failed`` for a retry at ``next_attempt_at``;
	``succeeded`` and ``dead`` are final. ``payload`` is the body exactly as sent (signed
	afresh at each attempt); ``history`` lists every attempt briefly, the ``response_*``
	and ``error`` fields describe the last one. A redelivery by hand is a new row pointing
	at the one it repeats (``redelivery_of``), so the log of the original is kept.
	"""

	class Status(models.TextChoices):
		PENDING = "pending"
		FAILED = "failed"
		SUCCEEDED = "succeeded"
		DEAD = "dead"

	subscription = models.ForeignKey(WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries")
	subscription_id: UUID
	event_id = models.UUIDField(help_text="The event's id: the same for every delivery of one event.")
	event_type = models.CharField(max_length=64)
	run_id = models.UUIDField(null=True, blank=True)
	payload = models.JSONField()
	status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
	attempts = models.PositiveSmallIntegerField(default=0)
	next_attempt_at = models.DateTimeField(null=True, blank=True)
	dispatched_at = models.DateTimeField(null=True, blank=True)
	last_attempt_at = models.DateTimeField(null=True, blank=True)
	finished_at = models.DateTimeField(null=True, blank=True)
	request_headers = models.JSONField(default=dict, blank=True)
	response_status = models.PositiveSmallIntegerField(null=True, blank=True)
	response_excerpt = models.TextField(blank=True)
	error = models.TextField(blank=True)
	duration_ms = models.PositiveIntegerField(null=True, blank=True)
	history = models.JSONField(default=list, blank=True)
	redelivery_of = models.ForeignKey(
		"self", null=True, blank=True, on_delete=models.SET_NULL, related_name="redeliveries"
	)
	redelivery_of_id: UUID | None

	class Meta:
		indexes: ClassVar = [
			models.Index(fields=["tenant", "subscription", "-created_at"], name="webhookdel_sub_recent"),
			models.Index(
				fields=["tenant", "subscription", "status", "-created_at"], name="webhookdel_sub_status"
			),
			# The sweeper serves every tenant, like the timer sweep: it reads by due time.
			models.Index(
				fields=["next_attempt_at"],
				condition=models.Q(status__in=["pending", "failed"]),
				name="webhookdel_due",
			),
			# ...and deletes finished deliveries past their retention, oldest first.
			models.Index(
				fields=["finished_at"],
				condition=models.Q(finished_at__isnull=False),
				name="webhookdel_finished",
			),
		]

	def __str__(self) -> str:
		return f"{self.event_type} -> {self.subscription_id} ({self.status})"
