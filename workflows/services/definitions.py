"""Services for workflows, versions and templates: create, edit, validate, publish, roll back,
archive, import and export, instantiate and publish templates. Every write is audited."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from workflows.dsl import (
	LIMITS,
	DocumentError,
	ValidationResult,
	checksum,
	dump_json,
	dump_yaml,
	load_document,
	validate_definition,
)
from workflows.errors import Conflict, FieldError, NotFound, ValidationFailed, refuse_unstorable
from workflows.models import Tenant, User, Workflow, WorkflowTemplate, WorkflowVersion, empty_definition
from workflows.models.audit import snapshot
from workflows.permissions import require
from workflows.references import TenantReferenceResolver
from workflows.roles import Perm
from workflows.services.audit import audit_record

__all__ = [
	"EXPORT_FORMAT",
	"PublishOutcome",
	"template_instantiate",
	"template_publish",
	"workflow_archive",
	"workflow_create",
	"workflow_export",
	"workflow_import",
	"workflow_publish",
	"workflow_rollback",
	"workflow_unarchive",
	"workflow_update",
	"workflow_validate",
]

EXPORT_FORMAT = "apg.workflow/v1"
_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,98}[a-z0-9])?$")
_MAX_TAGS = 20


def _clean_slug(slug: str | None, name: str, pointer: str = "/slug") -> str:
	value = slug if slug is not None else slugify(name)[:100].strip("-")
	if not _SLUG.match(value or ""):
		raise ValidationFailed.single(
			pointer,
			f"{value!r} is not a valid slug.",
			"Use 1 to 100 lower-case letters, digits and hyphens, starting and ending with a letter or digit.",
		)
	return value


def _clean_name(name: str, pointer: str = "/name") -> str:
	name = (name or "").strip()
	if not name or len(name) > 200:
		raise ValidationFailed.single(
			pointer, "A name of 1 to 200 characters is required.", "Give it a short, descriptive name."
		)
	return name


def _clean_tags(tags: Any, pointer: str = "/tags") -> list[str]:
	if not isinstance(tags, list | tuple) or not all(
		isinstance(t, str) and 0 < len(t.strip()) <= 50 for t in tags
	):
		raise ValidationFailed.single(
			pointer, "Tags must be a list of strings of 1 to 50 characters.", 'e.g. ["billing", "nightly"]'
		)
	cleaned = list(dict.fromkeys(t.strip() for t in tags))
	if len(cleaned) > _MAX_TAGS:
		raise ValidationFailed.single(pointer, f"At most {_MAX_TAGS} tags.", "Remove some tags.")
	return cleaned


def _clean_draft(definition: Any, pointer: str = "/definition") -> dict[str, Any]:
	"""Drafts may be incomplete, but must be a JSON object within the size limit."""
	if not isinstance(definition, dict):
		raise ValidationFailed.single(
			pointer,
			"A definition must be a JSON object.",
			'Start from {"schema_version": "1.0", "nodes": [], "edges": []}.',
		)
	size = len(json.dumps(definition, separators=(",", ":"), ensure_ascii=False).encode())
	if size > LIMITS.max_document_bytes:
		raise ValidationFailed.single(
			pointer,
			f"The definition is {size} bytes; the limit max_document_bytes is {LIMITS.max_document_bytes}.",
			"Split it into sub-workflows.",
		)
	return definition


def _refuse_unstorable(**fields: Any) -> None:
	"""Text the database cannot store (U+0000) is refused, naming the field, before any write."""
	for name, value in fields.items():
		refuse_unstorable(value, f"/{name}")


def _field_errors(result: ValidationResult, prefix: str = "/definition") -> list[FieldError]:
	return [FieldError(prefix + e.pointer, e.message, e.hint) for e in result.errors]


def _slug_taken(tenant: Tenant, slug: str, exclude: Any = None) -> bool:
	qs = Workflow.objects.for_tenant(tenant).filter(slug=slug)
	if exclude is not None:
		qs = qs.exclude(pk=exclude)
	return qs.exists()


@transaction.atomic
def workflow_create(
	*,
	actor: User,
	tenant: Tenant,
	name: str,
	slug: str | None = None,
	description: str = "",
	tags: list[str] | None = None,
	definition: dict[str, Any] | None = None,
) -> Workflow:
	"""Create a workflow whose draft is ``definition`` (default: start wired to end)."""
	require(actor=actor, tenant=tenant, perm=Perm.WORKFLOW_EDIT)
	_refuse_unstorable(name=name, slug=slug, description=description, tags=tags, definition=definition)
	name = _clean_name(name)
	slug = _clean_slug(slug, name)
	draft = _clean_draft(definition if definition is not None else empty_definition())
	if _slug_taken(tenant, slug):
		raise Conflict(f"A workflow with slug {slug!r} exists already; choose another slug.")
	workflow = Workflow(
		tenant=tenant,
		name=name,
		slug=slug,
		description=description or "",
		tags=_clean_tags(tags or []),
		owner=actor,
		draft=draft,
		created_by=actor,
		updated_by=actor,
	)
	try:
		with transaction.atomic():
			_save_draft(workflow, actor=actor, reason="create")
	except IntegrityError:
		raise Conflict(f"A workflow with slug {slug!r} exists already; choose another slug.") from None
	audit_record(actor=actor, tenant=tenant, action="workflow.create", obj=workflow, after=snapshot(workflow))
	return workflow


def _save_draft(workflow: Workflow, *, actor: User, reason: str) -> None:
	"""Save, recording who and why in the draft history (services run outside requests too)."""
	workflow._history_user = actor  # pyright: ignore[reportAttributeAccessIssue]
	workflow._change_reason = reason  # pyright: ignore[reportAttributeAccessIssue]
	workflow.save()


def _locked(workflow: Workflow) -> Workflow:
	"""Lock the row and refresh ``workflow`` in place, so the caller's object stays current."""
	locked = Workflow.objects.for_tenant(workflow.tenant).select_for_update().filter(pk=workflow.pk)
	if locked.values_list("pk", flat=True).first() is None:
		raise NotFound()
	workflow.refresh_from_db()
	return workflow


@transaction.atomic
def workflow_update(
	*,
	actor: User,
	workflow: Workflow,
	if_revision: int | None = None,
	name: str | None = None,
	slug: str | None = None,
	description: str | None = None,
	tags: list[str] | None = None,
	definition: dict[str, Any] | None = None,
) -> Workflow:
	"""Change a workflow's metadata and/or draft.

	``if_revision`` (the ETag a client read) makes the write conditional: when the draft
	changed since, the update is refused with :class:`Conflict` instead of silently
	overwriting someone else's work.
	"""
	tenant = workflow.tenant
	require(actor=actor, tenant=tenant, perm=Perm.WORKFLOW_EDIT, obj=workflow)
	_refuse_unstorable(name=name, slug=slug, description=description, tags=tags, definition=definition)
	workflow = _locked(workflow)
	if if_revision is not None and if_revision != workflow.draft_revision:
		raise Conflict(
			f"The draft changed since you read it (revision {if_revision}, now {workflow.draft_revision}); "
			"reload it and apply your change again."
		)
	if workflow.is_archived:
		raise Conflict("The workflow is archived; restore it before editing.")
	before = snapshot(workflow)
	if name is not None:
		workflow.name = _clean_name(name)
	if slug is not None and slug != workflow.slug:
		workflow.slug = _clean_slug(slug, workflow.name)
		if _slug_taken(tenant, workflow.slug, exclude=workflow.pk):
			raise Conflict(f"A workflow with slug {workflow.slug!r} exists already; choose another slug.")
	if description is not None:
		workflow.description = description
	if tags is not None:
		workflow.tags = _clean_tags(tags)
	if definition is not None and definition != workflow.draft:
		workflow.draft = _clean_draft(definition)
		workflow.draft_revision += 1
	after = snapshot(workflow)
	if before == after:
		return workflow
	workflow.updated_by = actor
	_save_draft(workflow, actor=actor, reason="edit")
	audit_record(
		actor=actor, tenant=tenant, action="workflow.update", obj=workflow, before=before, after=after
	)
	return workflow


def workflow_validate(*, actor: User, tenant: Tenant, definition: Any) -> ValidationResult:
	"""Validate a definition against the tenant (connector actions, sub-workflows, users)."""
	require(actor=actor, tenant=tenant, perm=Perm.WORKFLOW_VIEW)
	return validate_definition(definition, references=TenantReferenceResolver(tenant))


@dataclass(frozen=True, slots=True)
class PublishOutcome:
	"""What publishing did: ``created`` is False when the draft equals the latest version."""

	version: WorkflowVersion
	created: bool


@transaction.atomic
def workflow_publish(*, actor: User, workflow: Workflow, changelog: str = "") -> PublishOutcome:
	"""Validate the draft and publish it as the next version.

	An invalid draft is refused with every error at once. Content identical to the latest
	version (by canonical checksum) creates no new version.
	"""
	tenant = workflow.tenant
	require(actor=actor, tenant=tenant, perm=Perm.WORKFLOW_PUBLISH, obj=workflow)
	workflow = _locked(workflow)
	if workflow.is_archived:
		raise Conflict("The workflow is archived; restore it before publishing.")
	result = validate_definition(workflow.draft, references=TenantReferenceResolver(tenant))
	if not result.ok:
		raise ValidationFailed(
			_field_errors(result),
			f"The draft has {len(result.errors)} problem(s); fix them and publish again.",
		)
	digest = checksum(workflow.draft)
	latest = WorkflowVersion.objects.for_tenant(tenant).filter(workflow=workflow).order_by("-number").first()
	if latest is not None and latest.checksum == digest:
		return PublishOutcome(version=latest, created=False)
	version = WorkflowVersion.objects.for_tenant(tenant).create(
		tenant=tenant,
		workflow=workflow,
		number=(latest.number + 1) if latest else 1,
		definition=workflow.draft,
		checksum=digest,
		published_by=actor,
		changelog=changelog.strip(),
		created_by=actor,
		updated_by=actor,
	)
	audit_record(
		actor=actor,
		tenant=tenant,
		action="workflow.publish",
		obj=workflow,
		extra={"version": version.number, "checksum": digest},
	)
	return PublishOutcome(version=version, created=True)


@transaction.atomic
def workflow_rollback(*, actor: User, workflow: Workflow, version_number: int) -> Workflow:
	"""Make the draft equal to published version ``version_number`` (the draft history keeps the old draft)."""
	tenant = workflow.tenant
	require(actor=actor, tenant=tenant, perm=Perm.WORKFLOW_EDIT, obj=workflow)
	workflow = _locked(workflow)
	if workflow.is_archived:
		raise Conflict("The workflow is archived; restore it before editing.")
	version = (
		WorkflowVersion.objects.for_tenant(tenant).filter(workflow=workflow, number=version_number).first()
	)
	if version is None:
		raise NotFound(f"Version {version_number} does not exist.")
	if workflow.draft == version.definition:
		return workflow
	before = snapshot(workflow)
	workflow.draft = version.definition
	workflow.draft_revision += 1
	workflow.updated_by = actor
	_save_draft(workflow, actor=actor, reason=f"rollback to v{version_number}")
	audit_record(
		actor=actor,
		tenant=tenant,
		action="workflow.rollback",
		obj=workflow,
		before=before,
		after=snapshot(workflow),
		extra={"version": version_number},
	)
	return workflow


def _set_archived(*, actor: User, workflow: Workflow, archived: bool) -> Workflow:
	tenant = workflow.tenant
	require(actor=actor, tenant=tenant, perm=Perm.WORKFLOW_EDIT, obj=workflow)
	workflow = _locked(workflow)
	if workflow.is_archived == archived:
		return workflow
	before = snapshot(workflow)
	workflow.archived_at = timezone.now() if archived else None
	workflow.updated_by = actor
	workflow.save(update_fields=["archived_at", "updated_by", "updated_at"])
	audit_record(
		actor=actor,
		tenant=tenant,
		action="workflow.archive" if archived else "workflow.unarchive",
		obj=workflow,
		before=before,
		after=snapshot(workflow),
	)
	return workflow


@transaction.atomic
def workflow_archive(*, actor: User, workflow: Workflow) -> Workflow:
	"""Archive: hidden from default lists, read-only, starts no new runs."""
	return _set_archived(actor=actor, workflow=workflow, archived=True)


@transaction.atomic
def workflow_unarchive(*, actor: User, workflow: Workflow) -> Workflow:
	"""Bring an archived workflow back."""
	return _set_archived(actor=actor, workflow=workflow, archived=False)


def _export_document(workflow: Workflow, definition: dict[str, Any]) -> dict[str, Any]:
	return {
		"format": EXPORT_FORMAT,
		"workflow": {
			"name": workflow.name,
			"slug": workflow.slug,
			"description": workflow.description,
			"tags": workflow.tags,
		},
		"definition": definition,
	}


def workflow_export(
	*, actor: User, workflow: Workflow, format: Literal["json", "yaml"] = "json", version: int | None = None
) -> str:
	"""The workflow (metadata and the draft, or a version) as a JSON or YAML document."""
	require(actor=actor, tenant=workflow.tenant, perm=Perm.WORKFLOW_VIEW, obj=workflow)
	definition = workflow.draft
	if version is not None:
		found = (
			WorkflowVersion.objects.for_tenant(workflow.tenant)
			.filter(workflow=workflow, number=version)
			.first()
		)
		if found is None:
			raise NotFound(f"Version {version} does not exist.")
		definition = found.definition
	document = _export_document(workflow, definition)
	return dump_yaml(document) if format == "yaml" else dump_json(document)


@transaction.atomic
def workflow_import(
	*,
	actor: User,
	tenant: Tenant,
	text: str,
	format: Literal["json", "yaml"] | None = None,
	slug: str | None = None,
	name: str | None = None,
) -> Workflow:
	"""Create a workflow from an exported document (JSON or YAML; sniffed when not given).

	``slug`` and ``name`` override the document's (importing a copy next to the original).
	"""
	try:
		document = load_document(text, format=format)
	except DocumentError as exc:
		where = f" (line {exc.line}, column {exc.column})" if exc.line else ""
		raise ValidationFailed.single(
			"", f"The document cannot be read{where}: {exc}", "Export again, or fix the syntax."
		) from None
	if document.get("format") != EXPORT_FORMAT or not isinstance(document.get("workflow"), dict):
		raise ValidationFailed.single(
			"/format",
			f"Not a workflow export (expected format {EXPORT_FORMAT!r}).",
			"Import a file made by Export, or create a workflow and paste the definition into its draft.",
		)
	meta = document["workflow"]
	return workflow_create(
		actor=actor,
		tenant=tenant,
		name=name if name is not None else str(meta.get("name", "")),
		slug=slug if slug is not None else meta.get("slug"),
		description=str(meta.get("description") or ""),
		tags=meta.get("tags") or [],
		definition=_clean_draft(document.get("definition")),
	)


@transaction.atomic
def template_instantiate(
	*,
	actor: User,
	tenant: Tenant,
	template: WorkflowTemplate,
	name: str | None = None,
	slug: str | None = None,
) -> Workflow:
	"""Create a workflow whose draft is a copy of the template's definition."""
	if template.tenant_id not in (None, tenant.pk) or template.deleted_at is not None:  # pyright: ignore[reportAttributeAccessIssue]
		raise NotFound()
	workflow = workflow_create(
		actor=actor,
		tenant=tenant,
		name=name or template.name,
		# The template's slug is kept unless renamed: other templates may call it as a sub-workflow.
		slug=slug if slug is not None else (None if name else template.slug),
		description=template.description,
		tags=list(template.tags),
		definition=json.loads(json.dumps(template.definition)),
	)
	audit_record(
		actor=actor,
		tenant=tenant,
		action="template.instantiate",
		obj=workflow,
		extra={"template": template.slug, "template_version": template.version},
	)
	return workflow


@transaction.atomic
def template_publish(
	*,
	actor: User,
	workflow: Workflow,
	category: str,
	industry: str,
	description: str | None = None,
	tags: list[str] | None = None,
	sample_input: dict[str, Any] | None = None,
) -> WorkflowTemplate:
	"""Publish the workflow's latest version as a tenant template (admins); republishing bumps its version."""
	tenant = workflow.tenant
	require(actor=actor, tenant=tenant, perm=Perm.TEMPLATE_PUBLISH)
	latest = WorkflowVersion.objects.for_tenant(tenant).filter(workflow=workflow).order_by("-number").first()
	if latest is None:
		raise Conflict("Publish the workflow first: templates are made from a published version.")
	errors = [
		FieldError(f"/{key}", f"{key.capitalize()} is required.", "e.g. 'Finance'")
		for key, value in (("category", category), ("industry", industry))
		if not (value or "").strip()
	]
	if errors:
		raise ValidationFailed(errors)
	existing = (
		WorkflowTemplate.objects.select_for_update()
		.filter(tenant=tenant, slug=workflow.slug, deleted_at__isnull=True)
		.first()
	)
	values = {
		"name": workflow.name,
		"description": workflow.description if description is None else description,
		"category": category.strip(),
		"industry": industry.strip(),
		"tags": _clean_tags(tags if tags is not None else workflow.tags),
		"definition": latest.definition,
		"sample_input": sample_input or {},
		"published_by": actor,
	}
	if existing is None:
		template = WorkflowTemplate.objects.create(tenant=tenant, slug=workflow.slug, version=1, **values)
		audit_record(
			actor=actor, tenant=tenant, action="template.create", obj=template, after=snapshot(template)
		)
		return template
	before = snapshot(existing)
	for key, value in values.items():
		setattr(existing, key, value)
	existing.version += 1
	existing.save()
	audit_record(
		actor=actor,
		tenant=tenant,
		action="template.update",
		obj=existing,
		before=before,
		after=snapshot(existing),
	)
	return existing
