"""Abstract bases: uuid7 keys, timestamps, and tenant-owned rows that cannot be read unscoped.

A tenant-owned model's default manager refuses to build a query unless a tenant is bound
(:func:`workflows.context.tenant_scope`) or given (``Model.objects.for_tenant(t)``), so a
forgotten filter is an exception in development rather than a data leak in production.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Self

import uuid_utils.compat as uuid_compat
from django.conf import settings
from django.db import models
from django.utils import timezone

from workflows.context import UNSCOPED, _Unscoped, bound_tenant

if TYPE_CHECKING:
	from uuid import UUID

	from workflows.models.tenancy import Tenant

__all__ = [
	"TenantManager",
	"TenantOwnedModel",
	"TenantScopeError",
	"TenantScopedModel",
	"TimestampedModel",
	"uuid7",
]


def uuid7() -> UUID:
	"""A new time-ordered UUID (RFC 9562 version 7): index-friendly primary keys."""
	return uuid_compat.uuid7()


class TimestampedModel(models.Model):
	"""uuid7 primary key with created and updated stamps."""

	id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
	created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=False)
	updated_at = models.DateTimeField(auto_now=True)

	class Meta:
		abstract = True


class TenantScopeError(RuntimeError):
	"""A tenant-owned model was queried with no tenant bound or given."""


class TenantQuerySet(models.QuerySet):
	"""QuerySet of tenant-owned rows."""

	def alive(self) -> Self:
		"""Rows not soft-deleted."""
		return self.filter(deleted_at__isnull=True)


class TenantManager(models.Manager):
	"""Default manager of tenant-owned models: scoped to the bound tenant, soft-deleted rows hidden."""

	# Historical models in migrations get a plain manager instead.
	use_in_migrations = False

	def _unfiltered(self) -> TenantQuerySet:
		return TenantQuerySet(self.model, using=self._db)

	def _scope(self, queryset: TenantQuerySet) -> TenantQuerySet:
		tenant = bound_tenant()
		if tenant is None:
			raise TenantScopeError(
				f"{self.model.__name__} is tenant-owned: query it with "
				f"{self.model.__name__}.objects.for_tenant(tenant) or inside tenant_scope(tenant)."
			)
		if tenant is UNSCOPED:
			return queryset
		assert not isinstance(tenant, _Unscoped)
		return queryset.filter(tenant_id=tenant.pk)

	def __init__(self, *, soft_delete: bool = True) -> None:
		super().__init__()
		self.soft_delete = soft_delete

	def _alive(self, queryset: TenantQuerySet) -> TenantQuerySet:
		return queryset.alive() if self.soft_delete else queryset

	def get_queryset(self) -> TenantQuerySet:
		return self._alive(self._scope(self._unfiltered()))

	def for_tenant(self, tenant: Tenant) -> TenantQuerySet:
		"""Rows of ``tenant`` (soft-deleted ones hidden), whatever is bound."""
		bound = bound_tenant()
		assert bound is None or isinstance(bound, _Unscoped) or bound.pk == tenant.pk, (
			"for_tenant() asked for another tenant than the one bound to this context"
		)
		return self._alive(self._unfiltered().filter(tenant_id=tenant.pk))

	def with_deleted(self) -> TenantQuerySet:
		"""The bound tenant's rows, soft-deleted ones included (restore screens)."""
		return self._scope(self._unfiltered())


class TenantScopedModel(TimestampedModel):
	"""A row of one tenant that is never soft-deleted (execution records): scoped like the rest."""

	tenant = models.ForeignKey("workflows.Tenant", on_delete=models.CASCADE, related_name="+")
	tenant_id: UUID

	objects: ClassVar[TenantManager] = TenantManager(soft_delete=False)

	class Meta:
		abstract = True


class TenantOwnedModel(TimestampedModel):
	"""A row that belongs to one tenant: who made and changed it, and soft deletion.

	Deleting through the service layer sets ``deleted_at``; the row disappears from the
	default manager and tenant admins can restore it.
	"""

	tenant = models.ForeignKey("workflows.Tenant", on_delete=models.CASCADE, related_name="+")
	tenant_id: UUID
	created_by = models.ForeignKey(
		settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
	)
	updated_by = models.ForeignKey(
		settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
	)
	deleted_at = models.DateTimeField(null=True, blank=True)

	# Django's plain ``_base_manager`` still serves forward relations (``step.run``) once
	# the row itself was fetched within a scope.
	objects: ClassVar[TenantManager] = TenantManager()

	class Meta:
		abstract = True
