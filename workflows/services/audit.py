"""Writing the audit trail. Every service that mutates calls :func:`audit_record` in its transaction."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import models, transaction

from workflows.context import client_ip, request_id
from workflows.models.audit import AuditEvent, diff_snapshots

if TYPE_CHECKING:
	from workflows.models import Tenant, User

__all__ = ["audit_record"]


def audit_record(
	*,
	actor: User | None,
	tenant: Tenant,
	action: str,
	obj: models.Model,
	before: dict[str, Any] | None = None,
	after: dict[str, Any] | None = None,
	extra: dict[str, Any] | None = None,
) -> AuditEvent:
	"""Append one audit event describing ``action`` on ``obj``.

	``before``/``after`` are field snapshots (see :func:`workflows.models.audit.snapshot`);
	only the fields that differ are kept. ``extra`` adds context that is not a field change
	(a comment, a target state). Must run inside the transaction that made the change.
	"""
	assert transaction.get_connection().in_atomic_block, (
		"audit_record must run inside the change's transaction"
	)
	changes: dict[str, Any] = diff_snapshots(before, after)
	if extra:
		changes = {**changes, **{f"@{k}": v for k, v in extra.items()}}
	return AuditEvent.objects.for_tenant(tenant).create(
		tenant=tenant,
		actor=actor if actor is not None and actor.is_authenticated else None,
		actor_label=actor.get_username() if actor is not None and actor.is_authenticated else "system",
		action=action,
		object_type=f"{obj._meta.app_label}.{obj._meta.model_name}",
		object_id=str(obj.pk),
		object_repr=str(obj)[:200],
		changes=changes,
		request_id=(request_id.get() or "")[:64],
		ip=client_ip.get(),
	)
