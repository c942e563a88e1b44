"""Services for tenant secrets. Values go in, never come out: only the engine reads them, at the point of use."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction

from workflows.crypto import decrypt, encrypt
from workflows.errors import NotFound, ValidationFailed
from workflows.models import Secret, Tenant, User
from workflows.models.audit import snapshot
from workflows.models.secrets import SECRET_NAME
from workflows.permissions import require
from workflows.roles import Perm
from workflows.rows import values_of_tenant
from workflows.services.audit import audit_record
from workflows.services.tenancy import object_soft_delete

__all__ = ["secret_delete", "secret_names", "secret_set", "secret_values"]

_MAX_VALUE = 64 * 1024


@transaction.atomic
def secret_set(*, actor: User, tenant: Tenant, name: str, value: str, description: str = "") -> Secret:
	"""Create a secret, or replace the value of the one with that name (editors and admins)."""
	require(actor=actor, tenant=tenant, perm=Perm.CONNECTION_MANAGE)
	try:
		SECRET_NAME(name)
	except DjangoValidationError as exc:
		raise ValidationFailed.single(
			"/name", f"{name!r} is not a valid secret name.", str(exc.messages[0])
		) from None
	if not isinstance(value, str) or not value or len(value) > _MAX_VALUE:
		raise ValidationFailed.single(
			"/value", f"A secret value is 1 to {_MAX_VALUE} characters.", "Paste the token or password."
		)
	existing = Secret.objects.for_tenant(tenant).select_for_update().filter(name=name).first()
	if existing is None:
		secret = Secret.objects.for_tenant(tenant).create(
			tenant=tenant,
			name=name,
			description=description,
			ciphertext=encrypt(value),
			created_by=actor,
			updated_by=actor,
		)
		audit_record(actor=actor, tenant=tenant, action="secret.create", obj=secret, after=snapshot(secret))
		return secret
	before = snapshot(existing)
	existing.ciphertext = encrypt(value)
	existing.description = description or existing.description
	existing.updated_by = actor
	existing.save(update_fields=["ciphertext", "description", "updated_by", "updated_at"])
	audit_record(
		actor=actor,
		tenant=tenant,
		action="secret.update",
		obj=existing,
		before=before,
		after=snapshot(existing),
		extra={"value": "changed"},
	)
	return existing


def secret_delete(*, actor: User, tenant: Tenant, name: str) -> None:
	"""Delete a secret (soft; runs that still name it fail their step with a clear error)."""
	secret = Secret.objects.for_tenant(tenant).filter(name=name).first()
	if secret is None:
		raise NotFound(f"No secret named {name!r}.")
	object_soft_delete(actor=actor, obj=secret, perm=Perm.CONNECTION_MANAGE)


def secret_names(tenant_id: object) -> list[str]:
	"""The names of a tenant's secrets (what ``.secrets`` offers to expressions)."""
	return sorted(values_of_tenant(Secret, tenant_id, "name"))


def secret_values(tenant_id: object, names: set[str]) -> dict[str, str]:
	"""Decrypted values of the named secrets, for the engine at the point of use only."""
	rows = Secret.objects._unfiltered().filter(tenant_id=tenant_id, deleted_at__isnull=True, name__in=names)
	return {row.name: decrypt(row.ciphertext) for row in rows}
