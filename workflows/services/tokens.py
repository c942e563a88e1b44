"""API token services: create (the plain value is returned once), revoke, authenticate."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from workflows.errors import NotFound, ValidationFailed
from workflows.models import ApiToken, Membership, Tenant, User
from workflows.models.audit import snapshot
from workflows.models.tenancy import TOKEN_PREFIX, hash_token
from workflows.permissions import require
from workflows.roles import Perm
from workflows.rows import ModelRows, model_rows
from workflows.services.audit import audit_record

__all__ = [
	"AuthenticatedToken",
	"IssuedToken",
	"api_token_authenticate",
	"api_token_authenticate_member",
	"api_token_create",
	"api_token_revoke",
]

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


@dataclass(frozen=True, slots=True)
class AuthenticatedToken:
	"""A usable token with the membership of its user in its tenant, as one request found them."""

	token: ApiToken
	membership: Membership


def api_token_authenticate(raw: str) -> ApiToken | None:
	"""The usable token for ``raw``, or None (unknown, malformed, revoked, expired, or no longer a member).

	Callers must answer every None the same way, so a client cannot tell which it was.
	"""
	found = api_token_authenticate_member(raw)
	return None if found is None else found.token


def api_token_authenticate_member(raw: str) -> AuthenticatedToken | None:
	"""Like :func:`api_token_authenticate`, with the membership it checked (for one request)."""
	if not raw.startswith(TOKEN_PREFIX) or len(raw) > 200:
		return None
	found = _token_lookup(hash_token(raw))
	if found is None:
		return None
	token, membership = found
	now = timezone.now()
	if not token.is_usable(now) or not token.user.is_active or not token.tenant.is_active:
		return None
	if token.last_used_at is None or now - token.last_used_at > _LAST_USED_RESOLUTION:
		# A plain UPDATE: bookkeeping, not a user action, so no audit event.
		ApiToken.objects._unfiltered().filter(pk=token.pk).update(last_used_at=now)
		token.last_used_at = now
	return AuthenticatedToken(token=token, membership=membership)


# --- the lookup ------------------------------------------------------------------------------------
# Every authenticated API request starts here, so the lookup is one statement written once:
# the token, its user and tenant, and the user's live membership in that tenant (an inner join,
# so a user who is no longer a member finds no row). Built by the ORM it cost several times
# the query itself in Python (compiling a join with select_related on every request). Columns
# come from the models' metadata and values pass through each field's database converters,
# so the instances are what ``select_related("user", "tenant")`` would have made.

_MEMBERSHIP_FIELDS = ("id", "tenant", "user", "role")


def _token_lookup_sql(db: BaseDatabaseWrapper, loaders: list[ModelRows]) -> str:
	token, user, tenant, member = (model_rows(db, model) for model, _ in _LOOKUP_MODELS)
	selected = ", ".join(
		f"{alias}.{column}" for alias, rows in zip("tunm", loaders, strict=True) for column in rows.columns
	)
	t, u, n, m = token.column, user.column, tenant.column, member.column
	# Identifiers only, quoted, from the models' metadata; the one value is a parameter.
	return (
		f"SELECT {selected} FROM {token.table} t "  # noqa: S608
		f"INNER JOIN {user.table} u ON u.{u['id']} = t.{t['user']} "
		f"INNER JOIN {tenant.table} n ON n.{n['id']} = t.{t['tenant']} "
		f"INNER JOIN {member.table} m ON m.{m['user']} = t.{t['user']} "
		f"AND m.{m['tenant']} = t.{t['tenant']} AND m.{m['deleted_at']} IS NULL "
		f"WHERE t.{t['key_hash']} = %s AND t.{t['deleted_at']} IS NULL"
	)


@dataclass(frozen=True, slots=True)
class _Lookup:
	"""The lookup's statement for one database backend, and the loaders of its row's parts."""

	sql: str
	loaders: list[ModelRows]


def _lookup_for(db: BaseDatabaseWrapper) -> _Lookup:
	lookup = _LOOKUPS.get(db.vendor)
	if lookup is None:
		loaders = [model_rows(db, model, names) for model, names in _LOOKUP_MODELS]
		lookup = _LOOKUPS[db.vendor] = _Lookup(sql=_token_lookup_sql(db, loaders), loaders=loaders)
	return lookup


def _token_lookup(key_hash: str) -> tuple[ApiToken, Membership] | None:
	db = connections[DEFAULT_DB_ALIAS]
	lookup = _lookup_for(db)
	with db.cursor() as cursor:
		cursor.execute(lookup.sql, [key_hash])
		row = cursor.fetchone()
	if row is None:
		return None
	parts: list[Any] = []
	at = 0
	for loader in lookup.loaders:
		parts.append(loader.load(db, row[at : at + len(loader.columns)]))
		at += len(loader.columns)
	token, user, tenant, membership = parts
	token.user = user
	token.tenant = tenant
	membership.user = user
	membership.tenant = tenant
	return token, membership


_LOOKUPS: dict[str, _Lookup] = {}
# The models of the lookup's row, in order, and the fields each contributes (None: every one).
_LOOKUP_MODELS: list[tuple[type[models.Model], tuple[str, ...] | None]] = [
	(ApiToken, None),
	(User, None),
	(Tenant, None),
	(Membership, _MEMBERSHIP_FIELDS),
]
