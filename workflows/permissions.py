"""One permission check for every interface: role map first, then django-guardian object grants."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import models

from workflows.errors import NotFound, PermissionDenied
from workflows.roles import Perm, Role, role_allows
from workflows.rows import first_of_tenant

if TYPE_CHECKING:
	from workflows.models import Membership, Tenant, User

__all__ = ["GUARDIAN_GRANTS", "membership_for", "membership_forget", "membership_remember", "require"]

# The object permissions a role-less share may grant, and the tenant permissions each implies.
GUARDIAN_GRANTS: dict[str, frozenset[Perm]] = {
	"view": frozenset({Perm.WORKFLOW_VIEW, Perm.RUN_VIEW}),
	"change": frozenset({Perm.WORKFLOW_VIEW, Perm.RUN_VIEW, Perm.WORKFLOW_EDIT}),
	"operate": frozenset({Perm.WORKFLOW_VIEW, Perm.RUN_VIEW, Perm.RUN_START, Perm.RUN_OPERATE}),
}


# Where a request's authentication leaves the membership it read (on the request's own user
# object, as Django's ModelBackend keeps its permission cache): (tenant id, membership).
_REMEMBERED = "_apg_membership"


def membership_for(*, user: User | None, tenant: Tenant) -> Membership | None:
	"""The live membership of ``user`` in ``tenant``, if any.

	Within an API request, the membership its authentication read (see
	:func:`membership_remember`); else read from the database.
	"""
	from workflows.models import Membership

	if user is None or not user.is_authenticated or not tenant.is_active:
		return None
	remembered: tuple[object, Membership] | None = getattr(user, _REMEMBERED, None)
	if remembered is not None and remembered[0] == tenant.pk:
		return remembered[1]
	return first_of_tenant(Membership, tenant.pk, {"user": user.pk})


def membership_remember(*, user: User, tenant: Tenant, membership: Membership) -> None:
	"""Let :func:`membership_for` answer from ``membership`` for this ``user`` object.

	For the authentication of one request, whose user object lives as long as the request:
	the membership is then read once per request, not by every permission check. Never for a
	user object that outlives a request (a WebSocket connection's), which must see a removal.
	"""
	setattr(user, _REMEMBERED, (tenant.pk, membership))


def membership_forget(*, user: User) -> None:
	"""Forget what :func:`membership_remember` left: the user's membership just changed."""
	if hasattr(user, _REMEMBERED):
		delattr(user, _REMEMBERED)


def require(
	*, actor: User | None, tenant: Tenant, perm: Perm, obj: models.Model | None = None
) -> Membership | None:
	"""Check that ``actor`` may do ``perm`` in ``tenant`` (on ``obj`` when given).

	Superusers pass everywhere. A role grants its permissions tenant-wide; a guardian grant on
	``obj`` can add to a member's role for that one object.

	Raises:
		NotFound: the actor has no membership in the tenant (they must not learn it exists).
		PermissionDenied: a member whose role (and object grants) lack ``perm``.
	"""
	if actor is not None and actor.is_active and actor.is_superuser:
		return membership_for(user=actor, tenant=tenant)
	membership = membership_for(user=actor, tenant=tenant)
	if membership is None:
		raise NotFound("Not found.")
	if role_allows(Role(membership.role), perm):
		return membership
	if obj is not None:
		for grant, perms in GUARDIAN_GRANTS.items():
			if perm in perms and actor is not None and actor.has_perm(_codename(obj, grant), obj):
				return membership
	raise PermissionDenied(perm)


def _codename(obj: models.Model, grant: str) -> str:
	return f"{obj._meta.app_label}.{grant}_{obj._meta.model_name}"
