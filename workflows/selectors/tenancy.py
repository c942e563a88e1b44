"""Reads of tenants, memberships, tokens and audit events."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db.models import QuerySet

from workflows.models import ApiToken, AuditEvent, Membership, Tenant, User
from workflows.permissions import require
from workflows.roles import Perm

if TYPE_CHECKING:
	from django.http import HttpRequest

__all__ = [
	"ACTIVE_TENANT_SESSION_KEY",
	"active_tenant_for",
	"api_token_list",
	"audit_event_list",
	"member_list",
	"tenant_list_for_user",
]

ACTIVE_TENANT_SESSION_KEY = "apg_active_tenant"


def tenant_list_for_user(*, user: User) -> QuerySet[Tenant]:
	"""The active tenants ``user`` is a live member of, by name."""
	return Tenant.objects.filter(
		is_active=True,
		memberships__user=user,
		memberships__deleted_at__isnull=True,
	).distinct()


def active_tenant_for(request: HttpRequest) -> Tenant | None:
	"""The tenant the browser session works in: the one chosen, else the first membership."""
	user = request.user
	assert isinstance(user, User), "active_tenant_for needs a signed-in user"
	tenants = tenant_list_for_user(user=user)
	chosen = request.session.get(ACTIVE_TENANT_SESSION_KEY) if hasattr(request, "session") else None
	if chosen:
		tenant = tenants.filter(pk=chosen).first()
		if tenant is not None:
			return tenant
	return tenants.first()


def member_list(*, actor: User, tenant: Tenant) -> QuerySet[Membership]:
	"""Members of ``tenant`` with their users."""
	require(actor=actor, tenant=tenant, perm=Perm.MEMBER_VIEW)
	return Membership.objects.for_tenant(tenant).select_related("user").order_by("user__username")


def api_token_list(*, actor: User, tenant: Tenant) -> QuerySet[ApiToken]:
	"""The actor's own tokens in ``tenant``, newest first."""
	require(actor=actor, tenant=tenant, perm=Perm.TOKEN_MANAGE_OWN)
	return ApiToken.objects.for_tenant(tenant).filter(user=actor).order_by("-created_at")


def audit_event_list(
	*,
	actor: User,
	tenant: Tenant,
	action: str | None = None,
	object_type: str | None = None,
	object_id: str | None = None,
	actor_id: Any = None,
	since: datetime | None = None,
	until: datetime | None = None,
) -> QuerySet[AuditEvent]:
	"""The tenant's audit events, newest first, filtered (admins only)."""
	require(actor=actor, tenant=tenant, perm=Perm.AUDIT_VIEW)
	events = AuditEvent.objects.for_tenant(tenant)
	if action:
		events = events.filter(action=action)
	if object_type:
		events = events.filter(object_type=object_type)
	if object_id:
		events = events.filter(object_id=object_id)
	if actor_id:
		events = events.filter(actor_id=actor_id)
	if since:
		events = events.filter(occurred_at__gte=since)
	if until:
		events = events.filter(occurred_at__lt=until)
	return events.order_by("-occurred_at", "-id")
