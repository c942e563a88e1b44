"""Default data every installation gets, loaded idempotently by quickstart and migrate-time hooks."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass

from django.db import transaction

from workflows.context import tenant_scope
from workflows.models import Membership, Tenant, User
from workflows.roles import Role
from workflows.services.tenancy import membership_add, tenant_create

__all__ = ["DemoAccount", "ensure_demo_account", "load_default_data"]


@dataclass(frozen=True, slots=True)
class DemoAccount:
	"""The quickstart owner: ``password`` is None when an existing account was kept as it was."""

	username: str
	password: str | None
	tenant: Tenant
	created: bool


@transaction.atomic
def ensure_demo_account(
	*, username: str | None = None, password: str | None = None, tenant_slug: str | None = None
) -> DemoAccount:
	"""Create (once) the demo tenant and its owner.

	Values come from the arguments, else QUICKSTART_USERNAME / QUICKSTART_PASSWORD /
	QUICKSTART_TENANT, else defaults (a generated password). A second run keeps the
	account and its password unless a password is given explicitly.
	"""
	username = username or os.environ.get("QUICKSTART_USERNAME") or "owner"
	password = password or os.environ.get("QUICKSTART_PASSWORD") or None
	tenant_slug = tenant_slug or os.environ.get("QUICKSTART_TENANT") or "demo"
	user = User.objects.filter(username=username).first()
	created = user is None
	if user is None:
		password = password or secrets.token_urlsafe(12)
		user = User.objects.create_user(
			username=username, password=password, is_staff=True, is_superuser=True
		)
	elif password:
		user.set_password(password)
		user.save(update_fields=["password"])
	tenant = Tenant.objects.filter(slug=tenant_slug).first()
	if tenant is None:
		tenant = tenant_create(
			actor=user, slug=tenant_slug, name=tenant_slug.replace("-", " ").title() + " Organization"
		)
	else:
		with tenant_scope(tenant):
			if not Membership.objects.filter(user=user).exists():
				membership_add(actor=user, tenant=tenant, user=user, role=Role.OWNER)
	return DemoAccount(username=username, password=password, tenant=tenant, created=created)


def load_default_data() -> dict[str, int]:
	"""Load the data shipped with the product; returns counts of what was added."""
	return {}
