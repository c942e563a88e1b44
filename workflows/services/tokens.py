"""API token services: create (the plain value is returned once), revoke, authenticate."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from workflows.errors import NotFound, ValidationFailed
from workflows.models import ApiToken, Tenant, User
from workflows.models.audit import snapshot
from workflows.models.tenancy import TOKEN_PREFIX, hash_token
from workflows.permissions import membership_for, require
from workflows.roles import Perm
from workflows.services.audit import audit_record

__all__ = ["IssuedToken", "api_token_authenticate", "api_token_create", "api_token_revoke"]

# Writing last_used_at on every request would turn each API read into a write; once a
# minute is precise enough for "last used" and for spotting stale tokens.
_LAST_USED_RESOLUTION = timedelta(seconds=60)
_MAX_TTL = timedelta(days=3650)


@dataclass(frozen=True, slots=True)
class IssuedToken:
	"""A just-created token: ``raw`` is shown to the user once and never stored."""

	token: ApiToken
	raw: str


@transaction.atomic
def api_token_create(
	*,
	actor: User,
	tenant: Tenant,
	name: str,
	expires_in: timedelta | None = None,
	never_expires: bool = False,
) -> IssuedToken:
	"""Create a personal token for ``actor`` scoped to ``tenant``.

	Tokens expire after ``expires_in`` (default: API_TOKEN_DEFAULT_TTL_DAYS) unless
	``never_expires`` is set.
	"""
	require(actor=actor, tenant=tenant, perm=Perm.TOKEN_MANAGE_OWN)
	name = name.strip()
	if not name or len(name) > 100:
		raise ValidationFailed.single(
			"/name",
			"A token needs a name of 1 to 100 characters.",
			"Name it after where it is used, e.g. 'ci'.",
		)
	if expires_in is not None and not timedelta(minutes=1) <= expires_in <= _MAX_TTL:
		raise ValidationFailed.single(
			"/expires_in",
			"Token lifetime must be between one minute and ten years.",
			"Pick a shorter lifetime.",
		)
	expires_at: datetime | None = None
	if not never_expires:
		expires_at = timezone.now() + (expires_in or settings.API_TOKEN_DEFAULT_TTL)
	raw, prefix, key_hash = ApiToken.generate()
	token = ApiToken.objects.for_tenant(tenant).create(
		tenant=tenant,
		user=actor,
		name=name,
		prefix=prefix,
		key_hash=key_hash,
		expires_at=expires_at,
		created_by=actor,
		updated_by=actor,
	)
	audit_record(actor=actor, tenant=tenant, action="apitoken.create", obj=token, after=snapshot(token))
	return IssuedToken(token=token, raw=raw)


@transaction.atomic
def api_token_revoke(*, actor: User, tenant: Tenant, token_id: object) -> ApiToken:
	"""Revoke a token: the owner may revoke theirs, admins anyone's in the tenant."""
	token = ApiToken.objects.for_tenant(tenant).select_for_update().filter(pk=token_id).first()
	if token is None:
		raise NotFound()
	perm = Perm.TOKEN_MANAGE_OWN if token.user_id == actor.pk else Perm.TOKEN_MANAGE_ANY
	require(actor=actor, tenant=tenant, perm=perm)
	if token.revoked_at is not None:
		return token
	before = snapshot(token)
	token.revoked_at = timezone.now()
	token.updated_by = actor
	token.save(update_fields=["revoked_at", "updated_by", "updated_at"])
	audit_record(
		actor=actor, tenant=tenant, action="apitoken.revoke", obj=token, before=before, after=snapshot(token)
	)
	return token


def api_token_authenticate(raw: str) -> ApiToken | None:
	"""The usable token for ``raw``, or None (unknown, malformed, revoked, expired, or no longer a member).

	Callers must answer every None the same way, so a client cannot tell which it was.
	"""
	if not raw.startswith(TOKEN_PREFIX) or len(raw) > 200:
		return None
	token = (
		ApiToken.objects._unfiltered()
		.select_related("user", "tenant")
		.filter(key_hash=hash_token(raw), deleted_at__isnull=True)
		.first()
	)
	now = timezone.now()
	if token is None or not token.is_usable(now) or not token.user.is_active:
		return None
	if membership_for(user=token.user, tenant=token.tenant) is None:
		return None
	if token.last_used_at is None or now - token.last_used_at > _LAST_USED_RESOLUTION:
		# A plain UPDATE: bookkeeping, not a user action, so no audit event.
		ApiToken.objects._unfiltered().filter(pk=token.pk).update(last_used_at=now)
		token.last_used_at = now
	return token
