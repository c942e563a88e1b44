"""Triggers: what starts runs of a workflow without a person pressing Start.

A cron trigger fires on a schedule in a time zone, a webhook trigger when a signed HTTP
request arrives at its URL, an event trigger when an event of its type is published. (A
manual start is :func:`workflows.services.runs.run_start`; it needs no row.) Write them
through :mod:`workflows.services.triggers` only.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, ClassVar
from uuid import UUID

from django.db import models

from workflows.models.base import TenantOwnedModel

if TYPE_CHECKING:
	from workflows.models.tenancy import Tenant

__all__ = ["MissedFirePolicy", "Trigger", "TriggerKind"]

WEBHOOK_SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix that makes leaked secrets easy to spot


class TriggerKind(models.TextChoices):
	"""What makes a trigger fire."""

	CRON = "cron"
	WEBHOOK = "webhook"
	EVENT = "event"


class MissedFirePolicy(models.TextChoices):
	"""What a cron trigger does with occurrences that passed while nothing could fire them."""

	SKIP = "skip"
	FIRE_ONCE = "fire_once"
	FIRE_ALL = "fire_all"


class Trigger(TenantOwnedModel):
	"""Starts runs of ``workflow`` (its latest published version, or the pinned ``version``).

	``input`` is the run input for cron triggers; for webhook and event triggers it is a
	template rendered against the request or event (None: the payload itself).

	The webhook ``secret`` is stored encrypted (workflows/crypto.py, like stored secrets):
	the server must recompute HMACs with it, so it cannot be hashed. It is redacted from the
	audit trail and is never returned by an API after it is issued.
	"""

	workflow = models.ForeignKey("workflows.Workflow", on_delete=models.CASCADE, related_name="triggers")
	workflow_id: UUID
	name = models.CharField(max_length=200)
	kind = models.CharField(max_length=16, choices=TriggerKind.choices)
	enabled = models.BooleanField(default=True)
	input = models.JSONField(null=True, blank=True)
	priority = models.PositiveSmallIntegerField(null=True, blank=True)
	version = models.PositiveIntegerField(null=True, blank=True)

	cron_expression = models.CharField(max_length=200, blank=True)
	timezone = models.CharField(max_length=64, blank=True, default="UTC")
	missed_fire_policy = models.CharField(
		max_length=16, choices=MissedFirePolicy.choices, default=MissedFirePolicy.SKIP
	)
	next_fire_at = models.DateTimeField(null=True, blank=True)
	last_fired_at = models.DateTimeField(null=True, blank=True)

	token = models.CharField(max_length=100, blank=True)
	secret = models.CharField(max_length=200, blank=True)

	event_type = models.CharField(max_length=200, blank=True)
	filter = models.TextField(blank=True)

	class Meta:
		constraints: ClassVar = [
			models.UniqueConstraint(
				fields=["token"], condition=~models.Q(token=""), name="trigger_unique_webhook_token"
			),
			models.CheckConstraint(
				condition=models.Q(kind__in=[k.value for k in TriggerKind]), name="trigger_known_kind"
			),
		]
		indexes: ClassVar = [
			models.Index(fields=["tenant", "workflow", "-created_at"], name="trigger_tenant_workflow"),
			models.Index(
				fields=["tenant", "event_type"],
				condition=models.Q(kind="event", enabled=True, deleted_at__isnull=True),
				name="trigger_event_match",
			),
			# The cron sweep serves every tenant, like the timer sweep: it reads by due time.
			models.Index(
				fields=["next_fire_at"],
				condition=models.Q(kind="cron", enabled=True, deleted_at__isnull=True),
				name="trigger_cron_due",
			),
		]

	def __str__(self) -> str:
		return f"{self.name} ({self.kind})"

	@staticmethod
	def new_token(tenant: Tenant) -> str:
		"""A webhook URL token: the tenant's id, then 192 random bits.

		The tenant part lets the public endpoint resolve the trigger inside its tenant's
		scope (no cross-tenant read); the random part makes the URL unguessable.
		"""
		return f"{tenant.pk.hex}-{secrets.token_urlsafe(24)}"

	@staticmethod
	def new_secret() -> str:
		"""A webhook signing secret (256 random bits)."""
		return WEBHOOK_SECRET_PREFIX + secrets.token_urlsafe(32)

	def set_signing_secret(self, value: str) -> None:
		"""Keep ``value`` as the signing secret, encrypted."""
		from workflows.crypto import encrypt

		self.secret = encrypt(value)

	def signing_secret(self) -> str:
		"""The plain signing secret ("" for a trigger without one).

		Raises:
			workflows.crypto.DecryptionError: the encryption keys changed since it was stored.
		"""
		from workflows.crypto import decrypt

		if not self.secret or self.secret.startswith(
			WEBHOOK_SECRET_PREFIX
		):  # none, or stored before encryption
			return self.secret
		return decrypt(self.secret)
