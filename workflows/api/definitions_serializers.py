"""Request and response shapes of the workflows, versions and templates API.

Request serializers refuse keys they do not know (a typo like ``defintion`` would otherwise
be dropped silently and the client would believe its change was saved).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

from workflows.models import Workflow, WorkflowTemplate, WorkflowVersion

__all__ = [
	"DefinitionErrorSerializer",
	"DiffQuerySerializer",
	"DraftHistoryEntrySerializer",
	"ExportQuerySerializer",
	"ProblemErrorSerializer",
	"ProblemSerializer",
	"PublishSerializer",
	"RollbackSerializer",
	"StrictSerializer",
	"TemplateDetailSerializer",
	"TemplateInstantiateSerializer",
	"TemplateListQuerySerializer",
	"TemplatePublishSerializer",
	"TemplateSerializer",
	"ValidateSerializer",
	"ValidationReportSerializer",
	"VersionDetailSerializer",
	"VersionSerializer",
	"WorkflowCreateSerializer",
	"WorkflowDetailSerializer",
	"WorkflowImportSerializer",
	"WorkflowListQuerySerializer",
	"WorkflowSerializer",
	"WorkflowUpdateSerializer",
]


class StrictSerializer(serializers.Serializer):
	"""A request body that refuses unknown keys, naming the allowed ones."""

	def to_internal_value(self, data: Any) -> Any:
		unknown: dict[str, list[str]] = {}
		if hasattr(data, "keys"):
			allowed = ", ".join(sorted(self.fields)) or "(none)"
			message = f"Unknown field. Allowed fields: {allowed}."
			unknown = {key: [message] for key in sorted(set(data.keys()) - set(self.fields))}
		try:
			value = super().to_internal_value(data)
		except serializers.ValidationError as exc:
			# Report every problem at once: the known fields' errors and the unknown keys.
			detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
			raise serializers.ValidationError({**detail, **unknown}) from None
		if unknown:
			raise serializers.ValidationError(unknown)
		return value


# --- Errors -----------------------------------------------------------------------------


class ProblemErrorSerializer(serializers.Serializer):
	"""One problem with one input field."""

	pointer = serializers.CharField(help_text="JSON pointer into the request, e.g. /definition/nodes/0/id.")
	message = serializers.CharField()
	hint = serializers.CharField(required=False)


# A field named ``errors`` would shadow ``Serializer.errors``: these two are built from a
# field mapping instead of a class body.
ProblemSerializer = inline_serializer(
	"Problem",
	fields={
		"type": serializers.URLField(),
		"title": serializers.CharField(),
		"status": serializers.IntegerField(),
		"detail": serializers.CharField(),
		"errors": ProblemErrorSerializer(many=True, required=False),
		"request_id": serializers.CharField(required=False),
	},
)
"""An RFC 9457 problem-details body (``application/problem+json``)."""


# --- Workflows --------------------------------------------------------------------------


def _tags() -> serializers.ListField:
	return serializers.ListField(child=serializers.CharField(max_length=50), max_length=20, required=False)


class WorkflowListQuerySerializer(StrictSerializer):
	"""Filters of the workflow list."""

	tag = serializers.CharField(required=False)
	search = serializers.CharField(required=False)
	include_archived = serializers.BooleanField(required=False, default=False)
	ordering = serializers.ChoiceField(choices=["-updated_at", "name"], required=False, default="-updated_at")
	limit = serializers.IntegerField(required=False, min_value=1, max_value=500)
	cursor = serializers.CharField(required=False)


class WorkflowCreateSerializer(StrictSerializer):
	"""Create a workflow; its draft defaults to a start node wired to an end node."""

	name = serializers.CharField(max_length=200)
	slug = serializers.CharField(
		max_length=100, required=False, help_text="Derived from the name if left out."
	)
	description = serializers.CharField(required=False, allow_blank=True, default="")
	tags = _tags()
	definition = serializers.DictField(required=False, help_text="The draft definition document.")


class WorkflowUpdateSerializer(StrictSerializer):
	"""Change metadata and/or the draft; send ``If-Match`` with the ETag you read."""

	name = serializers.CharField(max_length=200, required=False)
	slug = serializers.CharField(max_length=100, required=False)
	description = serializers.CharField(required=False, allow_blank=True)
	tags = _tags()
	definition = serializers.DictField(required=False)


class WorkflowSerializer(serializers.ModelSerializer):
	"""A workflow as listed (without its draft)."""

	is_archived = serializers.BooleanField(read_only=True)

	class Meta:
		model = Workflow
		fields = [
			"id",
			"slug",
			"name",
			"description",
			"tags",
			"owner_id",
			"draft_revision",
			"is_archived",
			"archived_at",
			"created_at",
			"updated_at",
		]
		read_only_fields = fields


class WorkflowDetailSerializer(WorkflowSerializer):
	"""A workflow with its draft definition."""

	class Meta(WorkflowSerializer.Meta):
		fields = [*WorkflowSerializer.Meta.fields, "draft"]
		read_only_fields = fields


class ValidateSerializer(StrictSerializer):
	"""Validate this definition, or the draft when it is left out."""

	definition = serializers.JSONField(required=False)


class DefinitionErrorSerializer(serializers.Serializer):
	"""One problem in a definition."""

	pointer = serializers.CharField()
	code = serializers.CharField()
	message = serializers.CharField()
	hint = serializers.CharField()


ValidationReportSerializer = inline_serializer(
	"ValidationReport",
	fields={"ok": serializers.BooleanField(), "errors": DefinitionErrorSerializer(many=True)},
)
"""The outcome of validating a definition."""


class PublishSerializer(StrictSerializer):
	"""Publish the draft as the next version."""

	changelog = serializers.CharField(required=False, allow_blank=True, default="", max_length=10_000)


class RollbackSerializer(StrictSerializer):
	"""Make the draft equal to a published version."""

	version = serializers.IntegerField(min_value=1)


# --- Versions and history ---------------------------------------------------------------


class VersionSerializer(serializers.ModelSerializer):
	"""A published version (without its definition)."""

	class Meta:
		model = WorkflowVersion
		fields = ["id", "number", "checksum", "published_at", "published_by_id", "changelog"]
		read_only_fields = fields


class VersionDetailSerializer(VersionSerializer):
	"""A published version with its definition."""

	class Meta(VersionSerializer.Meta):
		fields = [*VersionSerializer.Meta.fields, "definition"]
		read_only_fields = fields


class DraftHistoryEntrySerializer(serializers.Serializer):
	"""An earlier state of the draft: when, by whom, and why it was saved."""

	id = serializers.UUIDField(source="history_id")
	date = serializers.DateTimeField(source="history_date")
	user = serializers.UUIDField(source="history_user_id", allow_null=True)
	reason = serializers.CharField(source="history_change_reason", allow_null=True)
	revision = serializers.IntegerField(source="draft_revision")


class DiffQuerySerializer(StrictSerializer):
	"""Two references: ``draft``, a version (``v3``) or a draft history entry (``history:<id>``)."""

	base = serializers.CharField(max_length=60)
	head = serializers.CharField(max_length=60, required=False, default="draft")


class ExportQuerySerializer(StrictSerializer):
	"""What to export: the draft or a version, as JSON or YAML."""

	format = serializers.ChoiceField(choices=["json", "yaml"], required=False, default="json")
	version = serializers.IntegerField(min_value=1, required=False)


class WorkflowImportSerializer(StrictSerializer):
	"""An exported document to create a workflow from."""

	document = serializers.CharField(trim_whitespace=False, help_text="The exported file's text.")
	format = serializers.ChoiceField(
		choices=["json", "yaml"], required=False, help_text="Sniffed from the text when left out."
	)
	slug = serializers.CharField(max_length=100, required=False)
	name = serializers.CharField(max_length=200, required=False)


# --- Templates --------------------------------------------------------------------------


class TemplateListQuerySerializer(StrictSerializer):
	"""Filters of the template list."""

	category = serializers.CharField(required=False)
	industry = serializers.CharField(required=False)
	tag = serializers.CharField(required=False)
	search = serializers.CharField(required=False)
	limit = serializers.IntegerField(required=False, min_value=1, max_value=500)
	cursor = serializers.CharField(required=False)


class TemplateSerializer(serializers.ModelSerializer):
	"""A template as listed (without its definition)."""

	is_global = serializers.BooleanField(read_only=True)

	class Meta:
		model = WorkflowTemplate
		fields = [
			"id",
			"slug",
			"name",
			"description",
			"category",
			"industry",
			"tags",
			"version",
			"is_global",
			"created_at",
			"updated_at",
		]
		read_only_fields = fields


class TemplateDetailSerializer(TemplateSerializer):
	"""A template with its definition and sample input."""

	class Meta(TemplateSerializer.Meta):
		fields = [*TemplateSerializer.Meta.fields, "definition", "sample_input"]
		read_only_fields = fields


class TemplateInstantiateSerializer(StrictSerializer):
	"""Create a workflow from a template."""

	name = serializers.CharField(max_length=200, required=False)
	slug = serializers.CharField(max_length=100, required=False)


class TemplatePublishSerializer(StrictSerializer):
	"""Publish the workflow's latest version as a tenant template."""

	category = serializers.CharField(max_length=100)
	industry = serializers.CharField(max_length=100)
	description = serializers.CharField(required=False, allow_blank=True)
	tags = _tags()
	sample_input = serializers.DictField(required=False)
