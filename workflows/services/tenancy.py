"""Services for tenants, memberships, soft deletion and object sharing.

Each is ``<entity>_<verb>(*, actor, ...)``: keyword-only, atomic, permission-checked, and
writes exactly one audit event per changed object.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from guardian.shortcuts import assign_perm, remove_perm

from workflows.errors import Conflict, NotFound, ValidationFailed
from workflows.models import Membership, Tenant, TenantOwnedModel, User
from workflows.models.audit import snapshot
from workflows.models.tenancy import slug_validator
from workflows.permissions import GUARDIAN_GRANTS, membership_forget, require
from workflows.roles import Perm, Role
from workflows.services.audit import audit_record

__all__ = [
	"membership_add",
	"membership_change_role",
	"membership_remove",
	"object_restore",
	"object_share",
	"object_soft_delete",
	"object_unshare",
	"tenant_create",
	"tenant_update",
]


def _clean_slug(slug: str) -> str:
	try:
		slug_validator(slug)
	except DjangoValidationError as exc:
		raise ValidationFailed.single(
			"/slug", f"{slug!r} is not a valid slug.", str(exc.messages[0])
		) from None
	return slug


def _clean_role(role: str) -> Role:
	try:
		return Role(role)
	except ValueError:
		known = ", ".join(r.value for r in Role)
		raise ValidationFailed.single("/role", f"Unknown role {role!r}.", f"Use one of: {known}.") from None


@transaction.atomic
def tenant_create(*, actor: User, slug: str, name: str) -> Tenant:
	"""Create a tenant with ``actor`` as its owner (two audit events: tenant and membership)."""
	slug = _clean_slug(slug)
	if not name.strip():
		raise ValidationFailed.single("/name", "The name is empty.", "Give the organization a name.")
	if Tenant.objects.filter(slug=slug).exists():
		raise Conflict(f"A tenant with slug {slug!r} exists already; choose another slug.")
	tenant = Tenant.objects.create(slug=slug, name=name.strip())
	audit_record(actor=actor, tenant=tenant, action="tenant.create", obj=tenant, after=snapshot(tenant))
	membership = Membership.objects.for_tenant(tenant).create(
		tenant=tenant, user=actor, role=Role.OWNER, created_by=actor, updated_by=actor
	)
	audit_record(
		actor=actor, tenant=tenant, action="membership.create", obj=membership, after=snapshot(membership)
	)
	return tenant


@transaction.atomic
def tenant_update(*, actor: User, tenant: Tenant, name: str | None = None) -> Tenant:
	"""Rename a tenant (admins)."""
	require(actor=actor, tenant=tenant, perm=Perm.TENANT_MANAGE)
	tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
	before = snapshot(tenant)
	if name is not None:
		if not name.strip():
			raise ValidationFailed.single("/name", "The name is empty.", "Give the organization a name.")
		tenant.name = name.strip()
	after = snapshot(tenant)
	if before == after:
		return tenant
	tenant.save(update_fields=["name", "updated_at"])
	audit_record(actor=actor, tenant=tenant, action="tenant.update", obj=tenant, before=before, after=after)
	return tenant


def _owner_count(tenant: Tenant) -> int:
	return Membership.objects.for_tenant(tenant).filter(role=Role.OWNER).count()


@transaction.atomic
def membership_add(*, actor: User, tenant: Tenant, user: User, role: str) -> Membership:
	"""Add ``user`` to ``tenant`` with ``role``. Only owners may make owners."""
	require(actor=actor, tenant=tenant, perm=Perm.MEMBER_MANAGE)
	clean_role = _clean_role(role)
	if clean_role is Role.OWNER:
		require(actor=actor, tenant=tenant, perm=Perm.OWNER_MANAGE)
	if Membership.objects.for_tenant(tenant).filter(user=user).exists():
		raise Conflict(f"{user.get_username()} is a member already; change their role instead.")
	try:
		with transaction.atomic():
			membership = Membership.objects.for_tenant(tenant).create(
				tenant=tenant, user=user, role=clean_role, created_by=actor, updated_by=actor
			)
	except IntegrityError:  # a concurrent add of the same user won the race
		raise Conflict(f"{user.get_username()} is a member already; change their role instead.") from None
	audit_record(
		actor=actor, tenant=tenant, action="membership.create", obj=membership, after=snapshot(membership)
	)
	return membership


def _locked_membership(tenant: Tenant, membership_id: Any) -> Membership:
	try:
		return Membership.objects.for_tenant(tenant).select_for_update().get(pk=membership_id)
	except (Membership.DoesNotExist, DjangoValidationError, ValueError):
		raise NotFound() from None


@transaction.atomic
def membership_change_role(*, actor: User, tenant: Tenant, membership: Membership, role: str) -> Membership:
	"""Change a member's role. The last owner cannot be demoted; only owners touch owners."""
	require(actor=actor, tenant=tenant, perm=Perm.MEMBER_MANAGE)
	clean_role = _clean_role(role)
	# Lock every owner row first so two concurrent demotions cannot both pass the count.
	list(Membership.objects.for_tenant(tenant).filter(role=Role.OWNER).select_for_update())
	# Under the locks the actor's own role is read again: another owner may just have changed it.
	membership_forget(user=actor)
	membership = _locked_membership(tenant, membership.pk)
	if Role.OWNER in (clean_role, Role(membership.role)):
		require(actor=actor, tenant=tenant, perm=Perm.OWNER_MANAGE)
	if membership.role == Role.OWNER and clean_role is not Role.OWNER and _owner_count(tenant) <= 1:
		raise Conflict("This is the tenant's last owner; make someone else owner first.")
	before = snapshot(membership)
	if membership.role == clean_role:
		return membership
	membership.role = clean_role
	membership.updated_by = actor
	membership.save(update_fields=["role", "updated_by", "updated_at"])
	audit_record(
		actor=actor,
		tenant=tenant,
		action="membership.update",
		obj=membership,
		before=before,
		after=snapshot(membership),
	)
	return membership


@transaction.atomic
def membership_remove(*, actor: User, tenant: Tenant, membership: Membership) -> None:
	"""Remove a member (soft delete, restorable). A member may always leave, except the last owner."""
	if membership.user_id != actor.pk:
		require(actor=actor, tenant=tenant, perm=Perm.MEMBER_MANAGE)
	list(Membership.objects.for_tenant(tenant).filter(role=Role.OWNER).select_for_update())
	membership_forget(user=actor)
	membership = _locked_membership(tenant, membership.pk)
	if membership.role == Role.OWNER:
		if membership.user_id != actor.pk:
			require(actor=actor, tenant=tenant, perm=Perm.OWNER_MANAGE)
		if _owner_count(tenant) <= 1:
			raise Conflict("This is the tenant's last owner; make someone else owner first.")
	_soft_delete(actor=actor, tenant=tenant, obj=membership)


def _soft_delete(*, actor: User, tenant: Tenant, obj: TenantOwnedModel) -> None:
	before = snapshot(obj)
	obj.deleted_at = timezone.now()
	obj.updated_by = actor
	obj.save(update_fields=["deleted_at", "updated_by", "updated_at"])
	audit_record(
		actor=actor,
		tenant=tenant,
		action=f"{obj._meta.model_name}.delete",
		obj=obj,
		before=before,
		after=snapshot(obj),
	)


@transaction.atomic
def object_soft_delete(*, actor: User, obj: TenantOwnedModel, perm: Perm) -> None:
	"""Soft-delete any tenant-owned row, given the permission its interface declares."""
	tenant = obj.tenant
	require(actor=actor, tenant=tenant, perm=perm, obj=obj)
	locked = type(obj).objects.for_tenant(tenant).select_for_update().filter(pk=obj.pk).first()
	if locked is None:
		raise NotFound()
	_soft_delete(actor=actor, tenant=tenant, obj=locked)


@transaction.atomic
def object_restore(*, actor: User, tenant: Tenant, model: type[TenantOwnedModel], object_id: Any) -> Any:
	"""Bring back a soft-deleted row (admins)."""
	require(actor=actor, tenant=tenant, perm=Perm.OBJECT_RESTORE)
	manager = model.objects
	try:
		obj = manager._unfiltered().filter(tenant_id=tenant.pk, pk=object_id).select_for_update().first()
	except (DjangoValidationError, ValueError):
		obj = None
	if obj is None:
		raise NotFound()
	if obj.deleted_at is None:
		raise Conflict("It is not deleted.")
	before = snapshot(obj)
	obj.deleted_at = None
	obj.updated_by = actor
	try:
		with transaction.atomic():
			obj.save(update_fields=["deleted_at", "updated_by", "updated_at"])
	except IntegrityError:
		raise Conflict("A live row with the same unique fields exists; remove or rename it first.") from None
	audit_record(
		actor=actor,
		tenant=tenant,
		action=f"{model._meta.model_name}.restore",
		obj=obj,
		before=before,
		after=snapshot(obj),
	)
	return obj


@transaction.atomic
def object_share(*, actor: User, obj: TenantOwnedModel, user: User, grant: str) -> None:
	"""Grant ``user`` (a member of the object's tenant) ``grant`` on this one object."""
	tenant = obj.tenant
	require(actor=actor, tenant=tenant, perm=Perm.OBJECT_SHARE)
	if grant not in GUARDIAN_GRANTS:
		raise ValidationFailed.single(
			"/grant", f"Unknown grant {grant!r}.", f"Use one of: {', '.join(GUARDIAN_GRANTS)}."
		)
	if not Membership.objects.for_tenant(tenant).filter(user=user).exists():
		raise ValidationFailed.single("/user", "That user is not a member of this tenant.", "Add them first.")
	assign_perm(f"{grant}_{obj._meta.model_name}", user, obj)
	audit_record(
		actor=actor,
		tenant=tenant,
		action=f"{obj._meta.model_name}.share",
		obj=obj,
		extra={"user": str(user.pk), "grant": grant},
	)


@transaction.atomic
def object_unshare(*, actor: User, obj: TenantOwnedModel, user: User, grant: str) -> None:
	"""Take back a grant made by :func:`object_share`."""
	tenant = obj.tenant
	require(actor=actor, tenant=tenant, perm=Perm.OBJECT_SHARE)
	if grant not in GUARDIAN_GRANTS:
		raise ValidationFailed.single(
			"/grant", f"Unknown grant {grant!r}.", f"Use one of: {', '.join(GUARDIAN_GRANTS)}."
		)
	remove_perm(f"{grant}_{obj._meta.model_name}", user, obj)
	audit_record(
		actor=actor,
		tenant=tenant,
		action=f"{obj._meta.model_name}.unshare",
		obj=obj,
		extra={"user": str(user.pk), "grant": grant},
	)
