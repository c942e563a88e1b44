"""Workflows (a mutable draft with history), immutable published versions, and templates."""

from __future__ import annotations

from typing import Any, ClassVar, Never
from uuid import UUID

from django.conf import settings
from django.db import models
from django.utils import timezone
from simple_history.models import HistoricalRecords

from workflows.models.base import TenantOwnedModel, TimestampedModel, uuid7

__all__ = ["VersionImmutableError", "Workflow", "WorkflowTemplate", "WorkflowVersion", "empty_definition"]


def empty_definition() -> dict[str, Any]:
	"""A new workflow's draft: a start node wired to an end node."""
	return {
		"schema_version": "1.0",
		"nodes": [
			{"id": "start", "type": "start", "name": "Start", "position": {"x": 0, "y": 0}, "config": {}},
			{"id": "end", "type": "end", "name": "End", "position": {"x": 240, "y": 0}, "config": {}},
		],
		"edges": [{"source": "start", "target": "end"}],
	}


class Workflow(TenantOwnedModel):
	"""A workflow: one draft definition edited live, and the versions published from it.

	``draft_revision`` increases with every change to the draft; clients send it back
	(If-Match) so two writers cannot silently overwrite each other. Draft history is kept
	by django-simple-history and can be diffed and rolled back.
	"""

	name = models.CharField(max_length=200)
	slug = models.SlugField(max_length=100)
	description = models.TextField(blank=True)
	tags = models.JSONField(default=list, blank=True)
	owner = models.ForeignKey(
		settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
	)
	owner_id: UUID | None
	draft = models.JSONField(default=empty_definition)
	draft_revision = models.PositiveIntegerField(default=1)
	archived_at = models.DateTimeField(null=True, blank=True)

	history = HistoricalRecords(
		history_id_field=models.UUIDField(default=uuid7, editable=False),
		excluded_fields=["updated_at", "created_by", "updated_by"],
		related_name="+",
	)

	class Meta:
		constraints: ClassVar = [
			models.UniqueConstraint(
				fields=["tenant", "slug"],
				condition=models.Q(deleted_at__isnull=True),
				name="workflow_unique_live_slug",
			),
		]
		indexes: ClassVar = [
			models.Index(fields=["tenant", "-updated_at"], name="workflow_tenant_recent"),
			models.Index(fields=["tenant", "archived_at"], name="workflow_tenant_archived"),
		]
		permissions: ClassVar = [("operate_workflow", "Can start and operate runs of this workflow")]

	def __str__(self) -> str:
		return self.name

	@property
	def is_archived(self) -> bool:
		"""Archived workflows are read-only and start no runs until restored."""
		return self.archived_at is not None


class VersionImmutableError(RuntimeError):
	"""Raised on any attempt to change a published version."""


class WorkflowVersion(TenantOwnedModel):
	"""A published, immutable snapshot of a workflow's definition (v1, v2, ...).

	Runs pin the version they start on, so publishing never changes a running run.
	"""

	workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="versions")
	workflow_id: UUID
	number = models.PositiveIntegerField()
	definition = models.JSONField()
	checksum = models.CharField(max_length=64)
	published_by = models.ForeignKey(
		settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
	)
	published_at = models.DateTimeField(default=timezone.now)
	changelog = models.TextField(blank=True)

	class Meta:
		constraints: ClassVar = [
			models.UniqueConstraint(fields=["workflow", "number"], name="workflowversion_unique_number"),
		]
		indexes: ClassVar = [
			models.Index(fields=["tenant", "workflow", "-number"], name="version_tenant_wf_number")
		]
		ordering: ClassVar = ["-number"]

	def __str__(self) -> str:
		return f"{self.workflow_id} v{self.number}"

	def save(self, *args: Any, **kwargs: Any) -> None:
		if not self._state.adding:
			raise VersionImmutableError("Published versions never change; publish a new version instead.")
		super().save(*args, **kwargs)

	def delete(self, *args: Any, **kwargs: Any) -> Never:
		raise VersionImmutableError("Published versions are kept for the runs that pinned them.")


class WorkflowTemplate(TimestampedModel):
	"""A reusable workflow: global (``tenant`` empty, shipped, read-only) or a tenant's own.

	Instantiating one copies its definition into a new workflow's draft.
	"""

	tenant = models.ForeignKey(
		"workflows.Tenant", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
	)
	slug = models.SlugField(max_length=100)
	name = models.CharField(max_length=200)
	description = models.TextField(blank=True)
	category = models.CharField(max_length=100)
	industry = models.CharField(max_length=100)
	tags = models.JSONField(default=list, blank=True)
	definition = models.JSONField()
	sample_input = models.JSONField(default=dict, blank=True)
	version = models.PositiveIntegerField(default=1)
	published_by = models.ForeignKey(
		settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
	)
	deleted_at = models.DateTimeField(null=True, blank=True)

	class Meta:
		constraints: ClassVar = [
			models.UniqueConstraint(
				fields=["tenant", "slug"],
				condition=models.Q(tenant__isnull=False, deleted_at__isnull=True),
				name="template_unique_tenant_slug",
			),
			models.UniqueConstraint(
				fields=["slug"],
				condition=models.Q(tenant__isnull=True, deleted_at__isnull=True),
				name="template_unique_global_slug",
			),
		]
		indexes: ClassVar = [
			models.Index(fields=["tenant", "category"], name="template_tenant_category"),
			models.Index(fields=["tenant", "industry"], name="template_tenant_industry"),
		]
		ordering: ClassVar = ["name"]

	def __str__(self) -> str:
		return self.name

	@property
	def is_global(self) -> bool:
		"""Shipped with the product, visible to every tenant, read-only."""
		return self.tenant_id is None  # pyright: ignore[reportAttributeAccessIssue]
