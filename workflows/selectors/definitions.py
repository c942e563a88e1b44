"""Reads of workflows, versions, draft history, diffs and templates."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from django.db.models import Q, QuerySet

from workflows.dsl import DefinitionDiff, diff_definitions
from workflows.errors import NotFound, ValidationFailed
from workflows.models import Tenant, User, Workflow, WorkflowTemplate, WorkflowVersion
from workflows.permissions import require
from workflows.roles import Perm

__all__ = [
	"parse_uuid",
	"template_get",
	"template_list",
	"workflow_diff",
	"workflow_draft_history",
	"workflow_get",
	"workflow_list",
	"workflow_version_get",
	"workflow_version_list",
]


def workflow_list(
	*,
	actor: User,
	tenant: Tenant,
	include_archived: bool = False,
	tag: str | None = None,
	search: str | None = None,
) -> QuerySet[Workflow]:
	"""The tenant's workflows, most recently changed first."""
	require(actor=actor, tenant=tenant, perm=Perm.WORKFLOW_VIEW)
	workflows = Workflow.objects.for_tenant(tenant)
	if not include_archived:
		workflows = workflows.filter(archived_at__isnull=True)
	if tag:
		workflows = workflows.filter(tags__icontains=json.dumps(tag))
	if search:
		workflows = workflows.filter(
			Q(name__icontains=search) | Q(slug__icontains=search) | Q(description__icontains=search)
		)
	return workflows.order_by("-updated_at", "-id")


def workflow_get(*, actor: User, tenant: Tenant, workflow_id: Any) -> Workflow:
	"""One workflow by id or slug; missing and another tenant's are the same NotFound."""
	require(actor=actor, tenant=tenant, perm=Perm.WORKFLOW_VIEW)
	workflows = Workflow.objects.for_tenant(tenant)
	pk = parse_uuid(workflow_id)
	found = workflows.filter(pk=pk).first() if pk is not None else None
	if found is None and isinstance(workflow_id, str):
		found = workflows.filter(slug=workflow_id).first()
	if found is None:
		raise NotFound()
	return found


def workflow_version_list(
	*, actor: User, workflow: Workflow, batch: Sequence[Workflow] = ()
) -> QuerySet[WorkflowVersion]:
	"""Published versions, newest first.

	``batch`` adds more workflows of the same tenant to the one query (GraphQL reads the
	versions of a page of workflows at once). Reading a batch needs the role to allow viewing
	workflows tenant-wide: an object grant on one workflow does not cover the others.
	"""
	require(actor=actor, tenant=workflow.tenant, perm=Perm.WORKFLOW_VIEW, obj=None if batch else workflow)
	return (
		WorkflowVersion.objects.for_tenant(workflow.tenant)
		.filter(workflow_id__in=[workflow.pk, *(other.pk for other in batch)])
		.order_by("-number")
	)


def workflow_version_get(*, actor: User, workflow: Workflow, number: int) -> WorkflowVersion:
	"""One published version by number."""
	found = workflow_version_list(actor=actor, workflow=workflow).filter(number=number).first()
	if found is None:
		raise NotFound(f"Version {number} does not exist.")
	return found


def workflow_draft_history(*, actor: User, workflow: Workflow) -> Any:
	"""Earlier states of the draft, newest first (django-simple-history records)."""
	require(actor=actor, tenant=workflow.tenant, perm=Perm.WORKFLOW_VIEW, obj=workflow)
	return workflow.history.order_by("-history_date")  # pyright: ignore[reportAttributeAccessIssue]


def parse_uuid(value: Any) -> UUID | None:
	"""``value`` as a UUID, or None when it is not one (a slug, garbage)."""
	if isinstance(value, UUID):
		return value
	try:
		return UUID(str(value))
	except ValueError:
		return None


_REF = re.compile(r"^(?:draft|v?(\d+)|history:([0-9a-f-]{36}))$")


def _resolve_ref(actor: User, workflow: Workflow, ref: str) -> dict[str, Any]:
	match = _REF.match(ref.strip().lower())
	if match is None:
		raise ValidationFailed.single(
			"/ref",
			f"{ref!r} is not a version reference.",
			"Use 'draft', a version number like 'v3', or 'history:<id>'.",
		)
	if match.group(1):
		return workflow_version_get(actor=actor, workflow=workflow, number=int(match.group(1))).definition
	if match.group(2):
		record = (
			workflow_draft_history(actor=actor, workflow=workflow).filter(history_id=match.group(2)).first()
		)
		if record is None:
			raise NotFound(f"No draft history entry {match.group(2)}.")
		return record.draft
	# The caller's instance may predate the latest edit; the draft is read fresh.
	return Workflow.objects.for_tenant(workflow.tenant).values_list("draft", flat=True).get(pk=workflow.pk)


def workflow_diff(*, actor: User, workflow: Workflow, base: str, head: str = "draft") -> DefinitionDiff:
	"""Structural diff between two of: the draft, a version (``v3``), a draft history entry."""
	require(actor=actor, tenant=workflow.tenant, perm=Perm.WORKFLOW_VIEW, obj=workflow)
	return diff_definitions(_resolve_ref(actor, workflow, base), _resolve_ref(actor, workflow, head))


def template_list(
	*,
	actor: User,
	tenant: Tenant,
	category: str | None = None,
	industry: str | None = None,
	tag: str | None = None,
	search: str | None = None,
) -> QuerySet[WorkflowTemplate]:
	"""Global templates and the tenant's own, filtered."""
	require(actor=actor, tenant=tenant, perm=Perm.WORKFLOW_VIEW)
	templates = WorkflowTemplate.objects.filter(
		Q(tenant__isnull=True) | Q(tenant=tenant), deleted_at__isnull=True
	)
	if category:
		templates = templates.filter(category__iexact=category)
	if industry:
		templates = templates.filter(industry__iexact=industry)
	if tag:
		templates = templates.filter(tags__icontains=json.dumps(tag))
	if search:
		templates = templates.filter(Q(name__icontains=search) | Q(description__icontains=search))
	return templates.order_by("name", "id")


def template_get(*, actor: User, tenant: Tenant, template_id: Any) -> WorkflowTemplate:
	"""One visible template by id or slug (the tenant's own wins over a global one with that slug)."""
	templates = template_list(actor=actor, tenant=tenant)
	pk = parse_uuid(template_id)
	found = templates.filter(pk=pk).first() if pk is not None else None
	if found is None and isinstance(template_id, str):
		found = (
			templates.filter(slug=template_id, tenant=tenant).first()
			or templates.filter(slug=template_id).first()
		)
	if found is None:
		raise NotFound()
	return found
