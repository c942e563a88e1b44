"""The audit trail: one append-only row for every mutation made through the service layer."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from typing import Any, ClassVar, Never

from django.conf import settings
from django.db import models
from django.utils import timezone

from workflows.models.base import TenantManager, TenantQuerySet, uuid7

__all__ = ["AuditEvent", "AuditImmutableError", "diff_snapshots", "snapshot"]

# Values never copied into the audit trail, whatever model they live on.
_REDACTED_FIELDS = frozenset({"key_hash", "password", "secret", "encrypted_secrets", "ciphertext"})


class AuditImmutableError(RuntimeError):
	"""Raised on any attempt to change or remove an audit event."""


class AuditQuerySet(TenantQuerySet):
	"""Audit events can be added and read, never updated or deleted in bulk."""

	def update(self, **kwargs: Any) -> Never:
		raise AuditImmutableError("Audit events are append-only; they cannot be updated.")

	def delete(self) -> Never:  # type: ignore[override]
		raise AuditImmutableError("Audit events are append-only; they cannot be deleted.")

	def bulk_update(self, *args: Any, **kwargs: Any) -> Never:  # type: ignore[override]
		raise AuditImmutableError("Audit events are append-only; they cannot be updated.")


class AuditManager(TenantManager):
	"""Tenant-scoped like every tenant-owned manager; audit rows have no soft delete."""

	def _unfiltered(self) -> AuditQuerySet:
		return AuditQuerySet(self.model, using=self._db)

	def get_queryset(self) -> AuditQuerySet:
		queryset = self._scope(self._unfiltered())
		assert isinstance(queryset, AuditQuerySet)
		return queryset

	def for_tenant(self, tenant: Any) -> AuditQuerySet:
		return self._unfiltered().filter(tenant_id=tenant.pk)


class AuditEvent(models.Model):
	"""Who did what to which object in which tenant, when, from where, with what change.

	Rows are written by :func:`workflows.services.audit.audit_record` inside the
	transaction of the change they describe, so a rolled-back change leaves no event.
	"""

	id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
	tenant = models.ForeignKey("workflows.Tenant", on_delete=models.PROTECT, related_name="+")
	# No database constraint: removing a user must never touch (or be blocked by) history.
	actor = models.ForeignKey(
		settings.AUTH_USER_MODEL,
		null=True,
		blank=True,
		on_delete=models.DO_NOTHING,
		db_constraint=False,
		related_name="+",
	)
	actor_label = models.CharField(max_length=150, blank=True)
	action = models.CharField(max_length=64)
	object_type = models.CharField(max_length=100)
	object_id = models.CharField(max_length=64)
	object_repr = models.CharField(max_length=200, blank=True)
	changes = models.JSONField(default=dict, blank=True)
	request_id = models.CharField(max_length=64, blank=True)
	ip = models.GenericIPAddressField(null=True, blank=True)
	occurred_at = models.DateTimeField(default=timezone.now, editable=False)

	objects: ClassVar[AuditManager] = AuditManager()

	class Meta:
		ordering = ["-occurred_at", "-id"]
		indexes: ClassVar = [
			models.Index(fields=["tenant", "-occurred_at"], name="audit_tenant_time"),
			models.Index(fields=["tenant", "object_type", "object_id"], name="audit_tenant_object"),
			models.Index(fields=["tenant", "actor"], name="audit_tenant_actor"),
			models.Index(fields=["tenant", "action"], name="audit_tenant_action"),
		]

	def __str__(self) -> str:
		return f"{self.actor_label or 'system'} {self.action} {self.object_type}:{self.object_id}"

	def save(self, *args: Any, **kwargs: Any) -> None:
		if not self._state.adding:
			raise AuditImmutableError("Audit events are append-only; they cannot be updated.")
		super().save(*args, **kwargs)

	def delete(self, *args: Any, **kwargs: Any) -> Never:
		raise AuditImmutableError("Audit events are append-only; they cannot be deleted.")


def _jsonable(value: Any) -> Any:
	if isinstance(value, uuid.UUID):
		return str(value)
	if isinstance(value, dt.datetime | dt.date | dt.time):
		return value.isoformat()
	if isinstance(value, decimal.Decimal):
		return str(value)
	if isinstance(value, bytes | memoryview):
		return "<binary>"
	return value


def snapshot(instance: models.Model) -> dict[str, Any]:
	"""The concrete field values of ``instance`` as JSON-ready data, secrets left out."""
	data: dict[str, Any] = {}
	for field in instance._meta.concrete_fields:
		if field.name in _REDACTED_FIELDS or field.name in {"updated_at", "created_at"}:
			continue
		data[field.attname] = _jsonable(getattr(instance, field.attname))
	return data


def diff_snapshots(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
	"""``{field: {"before": old, "after": new}}`` for each field that differs."""
	before = before or {}
	after = after or {}
	return {
		key: {"before": before.get(key), "after": after.get(key)}
		for key in sorted(before.keys() | after.keys())
		if before.get(key) != after.get(key)
	}
