"""Request and response shapes of the runs, steps, approvals, events and triggers API.

Request serializers refuse unknown keys (listing the allowed ones) so a misspelt field is an
error instead of being silently ignored; responses never include a webhook secret except in
:class:`IssuedTriggerSerializer` (create and rotate).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from workflows.engine.status import RunStatus, StepStatus
from workflows.models import Approval, MissedFirePolicy, Run, RunEvent, StepRun, Trigger, TriggerKind

__all__ = [
	"RUN_LIST_VALUES",
	"RUN_ORDERINGS",
	"ApprovalDecisionSerializer",
	"ApprovalSerializer",
	"CronPreviewQuerySerializer",
	"CronPreviewSerializer",
	"EmptyRequestSerializer",
	"EventOutcomeSerializer",
	"EventPublishSerializer",
	"IssuedTriggerSerializer",
	"RunCancelSerializer",
	"RunDetailSerializer",
	"RunEventListSerializer",
	"RunEventSerializer",
	"RunEventsQuerySerializer",
	"RunListQuerySerializer",
	"RunSerializer",
	"RunStartSerializer",
	"RunsProblemSerializer",
	"StepAttemptSerializer",
	"StepDetailSerializer",
	"StepSummarySerializer",
	"StrictSerializer",
	"TriggerCreateSerializer",
	"TriggerSerializer",
	"TriggerUpdateSerializer",
	"run_list_items",
]

# Cursor orderings a run list accepts, each made total by the id (cursor pagination needs it).
RUN_ORDERINGS: dict[str, tuple[str, ...]] = {
	"-created_at": ("-created_at", "-id"),
	"created_at": ("created_at", "id"),
	"-priority": ("-priority", "-created_at", "-id"),
	"priority": ("priority", "created_at", "id"),
}


# --- errors --------------------------------------------------------------------------------------


class _FieldProblemSerializer(serializers.Serializer):
	pointer = serializers.CharField(help_text="JSON pointer into the request, e.g. /input/order.")
	message = serializers.CharField()
	hint = serializers.CharField(required=False)


class RunsProblemSerializer(serializers.Serializer):
	"""RFC 9457 problem details (``application/problem+json``), as every error of this API."""

	type = serializers.URLField()
	title = serializers.CharField()
	status = serializers.IntegerField()
	detail = serializers.CharField()
	request_id = serializers.CharField(required=False)

	def get_fields(self) -> dict[str, serializers.Field]:
		# ``errors`` is also a Serializer property: declared here so the two do not clash.
		fields = super().get_fields()
		fields["errors"] = _FieldProblemSerializer(many=True, required=False)
		return fields


# --- requests ------------------------------------------------------------------------------------


class StrictSerializer(serializers.Serializer):
	"""A request body that must be an object with known keys only."""

	def to_internal_value(self, data: Any) -> Any:
		if isinstance(data, Mapping):
			unknown = sorted(str(key) for key in data if key not in self.fields)
			if unknown:
				allowed = ", ".join(sorted(n for n, f in self.fields.items() if not f.read_only)) or "none"
				raise serializers.ValidationError(
					{key: [f"Unknown field. Allowed fields: {allowed}."] for key in unknown}
				)
		return super().to_internal_value(data)


class EmptyRequestSerializer(StrictSerializer):
	"""No fields: an empty object (or no body)."""


class RunStartSerializer(StrictSerializer):
	"""Start a run of a published version."""

	input = serializers.JSONField(required=False, help_text="Checked against the version's input schema.")
	version = serializers.IntegerField(min_value=1, required=False, help_text="Default: the latest.")
	priority = serializers.IntegerField(min_value=0, max_value=9, required=False, help_text="9 runs first.")
	tags = serializers.ListField(
		child=serializers.CharField(min_length=1, max_length=50), required=False, max_length=50
	)


class RunCancelSerializer(StrictSerializer):
	"""Cancel a run, optionally undoing its completed steps first."""

	compensate = serializers.BooleanField(default=False)
	reason = serializers.CharField(allow_blank=True, default="", max_length=500)


class ApprovalDecisionSerializer(StrictSerializer):
	"""Approve or reject: ``data`` is checked against the approval's form schema when approving."""

	comment = serializers.CharField(allow_blank=True, default="", max_length=5000)

	def get_fields(self) -> dict[str, serializers.Field]:
		# ``data`` is also a Serializer property: declared here so the two do not clash.
		fields = super().get_fields()
		fields["data"] = serializers.JSONField(required=False, help_text="The form's answers.")
		return fields


class EventPublishSerializer(StrictSerializer):
	"""An event for waiting runs and event triggers."""

	type = serializers.CharField(max_length=200, help_text="e.g. order.paid")
	correlation = serializers.JSONField(required=False, help_text="Matched against waits' correlation.")
	payload = serializers.JSONField(required=False)


class _TriggerFieldsSerializer(StrictSerializer):
	name = serializers.CharField(max_length=200)
	input = serializers.JSONField(
		required=False, help_text="Run input (cron) or a template over the request/event (webhook, event)."
	)
	priority = serializers.IntegerField(min_value=0, max_value=9, required=False, allow_null=True)
	version = serializers.IntegerField(
		min_value=1, required=False, allow_null=True, help_text="Pin a version; null: the latest."
	)
	cron_expression = serializers.CharField(max_length=200, required=False, allow_blank=True)
	timezone = serializers.CharField(max_length=64, required=False)
	missed_fire_policy = serializers.ChoiceField(choices=MissedFirePolicy.choices, required=False)
	event_type = serializers.CharField(max_length=200, required=False, allow_blank=True)
	filter = serializers.CharField(required=False, allow_blank=True, max_length=5000)


class TriggerCreateSerializer(_TriggerFieldsSerializer):
	"""A new trigger of the workflow in the URL."""

	kind = serializers.ChoiceField(choices=TriggerKind.choices)
	enabled = serializers.BooleanField(default=True)


class TriggerUpdateSerializer(_TriggerFieldsSerializer):
	"""Change some of a trigger's fields (its kind and workflow stay; use enable/disable to toggle)."""

	name = serializers.CharField(max_length=200, required=False)


class RunListQuerySerializer(serializers.Serializer):
	"""Filters of the run list (query parameters)."""

	workflow = serializers.UUIDField(required=False, help_text="A workflow id.")
	version = serializers.IntegerField(min_value=1, required=False, help_text="A version number.")
	status = serializers.ChoiceField(
		choices=[s.value for s in RunStatus],
		required=False,
		error_messages={
			"invalid_choice": "{input!r} is not a run status; use one of: "
			+ ", ".join(s.value for s in RunStatus)
			+ "."
		},
	)
	tag = serializers.CharField(required=False, max_length=50)
	created_after = serializers.DateTimeField(required=False, help_text="ISO 8601 datetime.")
	created_before = serializers.DateTimeField(required=False, help_text="ISO 8601 datetime.")
	ordering = serializers.ChoiceField(choices=list(RUN_ORDERINGS), default="-created_at")


class RunEventsQuerySerializer(serializers.Serializer):
	"""Catching up on a run's history."""

	after = serializers.IntegerField(min_value=0, default=0, help_text="The last sequence number seen.")
	limit = serializers.IntegerField(min_value=1, max_value=10_000, default=1000)


class CronPreviewQuerySerializer(serializers.Serializer):
	"""A cron expression to preview."""

	expression = serializers.CharField(max_length=200, help_text="e.g. '0 9 * * 1-5'")
	timezone = serializers.CharField(max_length=64, default="UTC")
	count = serializers.IntegerField(default=10, help_text="1 to 100.")


# --- responses -----------------------------------------------------------------------------------


# Statuses are described, not enums: spectacular would name both choice sets "StatusEnum" and
# warn (ENUM_NAME_OVERRIDES in settings could name them; until then the values are listed).
@extend_schema_field({"type": "string", "description": "One of: " + ", ".join(RunStatus) + "."})
class _RunStatusField(serializers.CharField):
	pass


@extend_schema_field({"type": "string", "description": "One of: " + ", ".join(StepStatus) + "."})
class _StepStatusField(serializers.CharField):
	pass


# What a page of the run list reads: RunSerializer's fields, by their sources, as ``values()``
# rows. Model instances (a run, its workflow, version and starter: four per row) and DRF's
# per-field machinery cost more than the query itself for a page of 50; and the columns the
# list does not show (the engine's state, a kilobyte or more per run; the workflow's draft and
# the version's definition) stay in the database.
RUN_LIST_VALUES: tuple[str, ...] = (
	"id",
	"workflow_id",
	"workflow__slug",
	"version__number",
	"status",
	"priority",
	"tags",
	"input",
	"output",
	"error",
	"trigger_kind",
	"trigger_ref",
	"parent_run_id",
	"started_by__username",
	"created_at",
	"started_at",
	"finished_at",
	"last_seq",
)


def run_list_items(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
	"""What :class:`RunSerializer` makes of each run, from ``values(*RUN_LIST_VALUES)`` rows."""
	zone = timezone.get_current_timezone()

	def when(value: datetime | None) -> str | None:
		# DRF's DateTimeField (ISO 8601 in the current time zone, UTC written "Z") without its
		# per-call lookups: 150 datetimes a page.
		if value is None:
			return None
		text = value.astimezone(zone).isoformat()
		return text[:-6] + "Z" if text.endswith("+00:00") else text

	return [
		{
			"id": str(row["id"]),
			"workflow_id": row["workflow_id"],
			"workflow_slug": row["workflow__slug"],
			"version": row["version__number"],
			"status": row["status"],
			"priority": row["priority"],
			"tags": row["tags"],
			"input": row["input"],
			"output": row["output"],
			"error": row["error"],
			"trigger_kind": row["trigger_kind"],
			"trigger_ref": row["trigger_ref"],
			"parent_run_id": row["parent_run_id"],
			"started_by": row["started_by__username"],
			"created_at": when(row["created_at"]),
			"started_at": when(row["started_at"]),
			"finished_at": when(row["finished_at"]),
			"last_seq": row["last_seq"],
		}
		for row in rows
	]


class RunSerializer(serializers.ModelSerializer):
	"""A run."""

	workflow_slug = serializers.CharField(source="workflow.slug", read_only=True)
	version = serializers.IntegerField(source="version.number", read_only=True)
	started_by = serializers.CharField(source="started_by.username", read_only=True, allow_null=True)
	status = _RunStatusField(read_only=True)

	class Meta:
		model = Run
		fields = [
			"id",
			"workflow_id",
			"workflow_slug",
			"version",
			"status",
			"priority",
			"tags",
			"input",
			"output",
			"error",
			"trigger_kind",
			"trigger_ref",
			"parent_run_id",
			"started_by",
			"created_at",
			"started_at",
			"finished_at",
			"last_seq",
		]
		read_only_fields = fields


class StepSummarySerializer(serializers.ModelSerializer):
	"""The latest attempt of one step of a run, and how many attempts it took."""

	attempts = serializers.IntegerField(read_only=True, help_text="Attempts so far.")
	status = _StepStatusField(read_only=True)

	class Meta:
		model = StepRun
		fields = [
			"id",
			"key",
			"node_id",
			"node_type",
			"status",
			"attempt",
			"attempts",
			"started_at",
			"finished_at",
		]
		read_only_fields = fields


class RunDetailSerializer(RunSerializer):
	"""A run with its steps."""

	steps = StepSummarySerializer(source="step_summaries", many=True, read_only=True)

	class Meta(RunSerializer.Meta):
		fields = [*RunSerializer.Meta.fields, "steps"]
		read_only_fields = fields


class StepAttemptSerializer(serializers.ModelSerializer):
	"""One attempt of a step."""

	status = _StepStatusField(read_only=True)

	class Meta:
		model = StepRun
		fields = [
			"id",
			"attempt",
			"status",
			"input",
			"output",
			"error",
			"queue",
			"worker",
			"scheduled_at",
			"started_at",
			"finished_at",
		]
		read_only_fields = fields


class StepDetailSerializer(serializers.ModelSerializer):
	"""A step attempt with what went in and out, and every attempt of the same step."""

	attempts = StepAttemptSerializer(many=True, read_only=True)
	status = _StepStatusField(read_only=True)

	class Meta:
		model = StepRun
		fields = [
			"id",
			"run_id",
			"key",
			"node_id",
			"node_type",
			"frame",
			"attempt",
			"status",
			"input",
			"output",
			"error",
			"queue",
			"worker",
			"scheduled_at",
			"started_at",
			"finished_at",
			"attempts",
		]
		read_only_fields = fields


class RunEventSerializer(serializers.ModelSerializer):
	"""One entry of a run's history."""

	class Meta:
		model = RunEvent
		fields = ["seq", "type", "step_key", "data", "created_at"]
		read_only_fields = fields


class RunEventListSerializer(serializers.Serializer):
	"""A slice of a run's history; ask again with ``after=last_seq`` for more."""

	run_id = serializers.UUIDField()
	status = _RunStatusField()
	last_seq = serializers.IntegerField(help_text="The sequence number of the run's latest event.")
	events = RunEventSerializer(many=True)


class ApprovalSerializer(serializers.ModelSerializer):
	"""A human task."""

	decided_by = serializers.CharField(source="decided_by.username", read_only=True, allow_null=True)

	class Meta:
		model = Approval
		fields = [
			"id",
			"run_id",
			"key",
			"node_id",
			"title",
			"instructions",
			"assignees",
			"role",
			"form_schema",
			"deadline_at",
			"status",
			"decided_by",
			"decided_at",
			"comment",
			"data",
			"created_at",
		]
		read_only_fields = fields


class EventOutcomeSerializer(serializers.Serializer):
	"""Where a published event went."""

	event_id = serializers.UUIDField(source="event.pk")
	delivered = serializers.IntegerField(help_text="Waiting runs it was delivered to.")
	kept = serializers.BooleanField(help_text="No run waited: kept for a wait that starts soon.")
	started = serializers.IntegerField(help_text="Event triggers it was handed to.")


class TriggerSerializer(serializers.ModelSerializer):
	"""A trigger, never with its webhook secret."""

	webhook_path = serializers.SerializerMethodField()

	class Meta:
		model = Trigger
		fields = [
			"id",
			"workflow_id",
			"name",
			"kind",
			"enabled",
			"input",
			"priority",
			"version",
			"cron_expression",
			"timezone",
			"missed_fire_policy",
			"next_fire_at",
			"last_fired_at",
			"event_type",
			"filter",
			"webhook_path",
			"created_at",
			"updated_at",
		]
		read_only_fields = fields

	def get_webhook_path(self, obj: Trigger) -> str | None:
		"""Where a webhook trigger receives signed requests."""
		return f"/hooks/{obj.token}" if obj.token else None


class IssuedTriggerSerializer(TriggerSerializer):
	"""A trigger as created or re-keyed: ``secret`` is shown this once (webhook triggers)."""

	secret = serializers.CharField(allow_null=True, read_only=True, help_text="Shown once.")

	class Meta(TriggerSerializer.Meta):
		fields = [*TriggerSerializer.Meta.fields, "secret"]
		read_only_fields = fields


class CronPreviewSerializer(serializers.Serializer):
	"""The next fire times of a schedule, in its time zone."""

	expression = serializers.CharField()
	timezone = serializers.CharField()
	times = serializers.ListField(
		child=serializers.CharField(), help_text="ISO 8601 datetimes with the zone's offset at each."
	)
