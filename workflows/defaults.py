"""Default data every installation gets, loaded idempotently by quickstart and migrate-time hooks."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import transaction

from workflows.context import tenant_scope
from workflows.dsl import load_document
from workflows.models import Membership, Tenant, User, WorkflowTemplate
from workflows.roles import Role
from workflows.services.tenancy import membership_add, tenant_create

__all__ = ["TEMPLATES_DIR", "DemoAccount", "ensure_demo_account", "load_default_data", "shipped_templates"]


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


TEMPLATES_DIR = Path(__file__).resolve().parent / "templates_data"


def shipped_templates() -> list[dict[str, Any]]:
	"""The global templates shipped in ``workflows/templates_data/*.yaml``, by file name."""
	return [load_document(path.read_text(), format="yaml") for path in sorted(TEMPLATES_DIR.glob("*.yaml"))]


@transaction.atomic
def load_default_data() -> dict[str, int]:
	"""Install or upgrade the shipped global templates; returns how many were added and updated.

	A template is updated only when the shipped ``version`` is newer than the installed
	one, so running this on every start is cheap and never undoes a newer install.
	"""
	added = updated = 0
	for doc in shipped_templates():
		fields = {key: doc[key] for key in _TEMPLATE_FIELDS if key in doc}
		existing = WorkflowTemplate.objects.filter(
			tenant__isnull=True, slug=doc["slug"], deleted_at__isnull=True
		).first()
		if existing is None:
			WorkflowTemplate.objects.create(tenant=None, slug=doc["slug"], **fields)
			added += 1
		elif existing.version < int(doc.get("version", 1)):
			for key, value in fields.items():
				setattr(existing, key, value)
			existing.save()
			updated += 1
	return {"added": added, "updated": updated}


_TEMPLATE_FIELDS = (
	"name",
	"description",
	"category",
	"industry",
	"tags",
	"definition",
	"sample_input",
	"version",
)
