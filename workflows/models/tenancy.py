"""Users, tenants, memberships and API tokens."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import ClassVar
from uuid import UUID

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from workflows.models.base import TenantOwnedModel, TimestampedModel, uuid7
from workflows.roles import Role

__all__ = ["ApiToken", "Membership", "Tenant", "User"]

slug_validator = RegexValidator(
	r"^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$",
	"Use 1 to 50 lower-case letters, digits and hyphens, starting and ending with a letter or digit.",
)


class User(AbstractUser):
	"""A person who signs in; belongs to tenants through memberships."""

	id = models.UUIDField(primary_key=True, default=uuid7, editable=False)

	class Meta(AbstractUser.Meta):
		swappable = "AUTH_USER_MODEL"


class Tenant(TimestampedModel):
	"""An organization: the unit of isolation for workflows, runs, connections and audit."""

	slug = models.SlugField(max_length=50, unique=True, validators=[slug_validator])
	name = models.CharField(max_length=200)
	is_active = models.BooleanField(default=True)

	class Meta:
		ordering = ["name"]

	def __str__(self) -> str:
		return self.name


class Membership(TenantOwnedModel):
	"""A user's role in a tenant."""

	tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
	user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
	user_id: UUID
	role = models.CharField(max_length=16, choices=[(r.value, r.label) for r in Role])

	class Meta:
		constraints: ClassVar = [
			models.UniqueConstraint(
				fields=["tenant", "user"],
				condition=models.Q(deleted_at__isnull=True),
				name="membership_one_live_per_user",
			),
		]
		indexes: ClassVar = [models.Index(fields=["tenant", "role"], name="membership_tenant_role")]

	def __str__(self) -> str:
		return f"{self.user_id} in {self.tenant_id} as {self.role}"


TOKEN_PREFIX = "apg_"


def hash_token(raw: str) -> str:
	"""SHA-256 of a token. Tokens carry 256 random bits, so a fast hash is enough."""
	return hashlib.sha256(raw.encode()).hexdigest()


class ApiToken(TenantOwnedModel):
	"""A personal API token scoped to one tenant; only its hash is stored.

	The plain value is shown once, at creation. ``prefix`` (the first characters) lets a
	user tell tokens apart in a list without revealing them.
	"""

	user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
	user_id: UUID
	name = models.CharField(max_length=100)
	prefix = models.CharField(max_length=16)
	key_hash = models.CharField(max_length=64, unique=True)
	expires_at = models.DateTimeField(null=True, blank=True)
	last_used_at = models.DateTimeField(null=True, blank=True)
	revoked_at = models.DateTimeField(null=True, blank=True)

	class Meta:
		indexes: ClassVar = [models.Index(fields=["tenant", "user"], name="apitoken_tenant_user")]

	def __str__(self) -> str:
		return f"{self.name} ({self.prefix}…)"

	@staticmethod
	def generate() -> tuple[str, str, str]:
		"""A new raw token with its display prefix and hash."""
		raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
		return raw, raw[: len(TOKEN_PREFIX) + 6], hash_token(raw)

	def is_usable(self, now: datetime | None = None) -> bool:
		"""Not revoked, not expired, not deleted."""
		now = now or timezone.now()
		return (
			self.revoked_at is None
			and self.deleted_at is None
			and (self.expires_at is None or self.expires_at > now)
		)
