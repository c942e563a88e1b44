"""Request and response shapes of the outgoing webhooks API.

Request serializers refuse unknown keys. No response includes a signing secret except
:class:`IssuedWebhookSerializer` (create and rotate-secret), once.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from workflows.api.runs_serializers import StrictSerializer
from workflows.models import WebhookDelivery, WebhookSubscription

__all__ = [
	"IssuedWebhookSerializer",
	"WebhookCreateSerializer",
	"WebhookDeliveryDetailSerializer",
	"WebhookDeliveryQuerySerializer",
	"WebhookDeliverySerializer",
	"WebhookSerializer",
	"WebhookUpdateSerializer",
]

_STATUSES = [s.value for s in WebhookDelivery.Status]


# --- requests ------------------------------------------------------------------------------------


class WebhookCreateSerializer(StrictSerializer):
	"""Subscribe a URL to event types."""

	url = serializers.CharField(max_length=2000, help_text="An http:// or https:// URL (public).")
	event_types = serializers.ListField(
		child=serializers.CharField(max_length=64),
		min_length=1,
		max_length=50,
		help_text="Exact types (run.failed), prefixes (run.*, approval.*) or *.",
	)
	description = serializers.CharField(max_length=500, allow_blank=True, default="")


class WebhookUpdateSerializer(StrictSerializer):
	"""Change some of a subscription's fields (use enable/disable and rotate-secret for the rest)."""

	url = serializers.CharField(max_length=2000, required=False)
	event_types = serializers.ListField(
		child=serializers.CharField(max_length=64), min_length=1, max_length=50, required=False
	)
	description = serializers.CharField(max_length=500, allow_blank=True, required=False)


class WebhookDeliveryQuerySerializer(serializers.Serializer):
	"""Filters of a subscription's delivery log (query parameters)."""

	status = serializers.ChoiceField(
		choices=_STATUSES,
		required=False,
		error_messages={
			"invalid_choice": "{input!r} is not a delivery status; use one of: " + ", ".join(_STATUSES) + "."
		},
	)


# --- responses -----------------------------------------------------------------------------------


# Described, not an enum: spectacular would name it "StatusEnum" like the run statuses and warn.
@extend_schema_field({"type": "string", "description": "One of: " + ", ".join(_STATUSES) + "."})
class _DeliveryStatusField(serializers.CharField):
	pass


class WebhookSerializer(serializers.ModelSerializer):
	"""A subscription, never with its secret. ``disabled_reason`` says why it stopped."""

	class Meta:
		model = WebhookSubscription
		fields = [
			"id",
			"url",
			"description",
			"event_types",
			"active",
			"disabled_at",
			"disabled_reason",
			"consecutive_failures",
			"failing_since",
			"last_success_at",
			"created_at",
			"updated_at",
		]
		read_only_fields = fields


class IssuedWebhookSerializer(WebhookSerializer):
	"""A subscription as created or re-keyed: ``secret`` is shown this once."""

	secret = serializers.CharField(read_only=True, help_text="The signing secret. Shown once: store it now.")

	class Meta(WebhookSerializer.Meta):
		fields = [*WebhookSerializer.Meta.fields, "secret"]
		read_only_fields = fields


class WebhookDeliverySerializer(serializers.ModelSerializer):
	"""One delivery in the log: the last attempt's outcome."""

	status = _DeliveryStatusField(read_only=True)

	class Meta:
		model = WebhookDelivery
		fields = [
			"id",
			"subscription_id",
			"event_id",
			"event_type",
			"run_id",
			"status",
			"attempts",
			"next_attempt_at",
			"last_attempt_at",
			"finished_at",
			"response_status",
			"duration_ms",
			"error",
			"redelivery_of_id",
			"created_at",
		]
		read_only_fields = fields


class _DeliveryRequestSerializer(serializers.Serializer):
	headers = serializers.JSONField(source="request_headers", help_text="Headers of the last attempt.")
	body = serializers.JSONField(source="payload", help_text="The JSON body, as sent.")


class _DeliveryResponseSerializer(serializers.Serializer):
	status = serializers.IntegerField(source="response_status", allow_null=True)
	body_excerpt = serializers.CharField(
		source="response_excerpt", help_text="The first 2,000 characters of the response body."
	)
	duration_ms = serializers.IntegerField(allow_null=True)


class _AttemptSerializer(serializers.Serializer):
	attempt = serializers.IntegerField()
	at = serializers.DateTimeField()
	status = serializers.IntegerField(allow_null=True, help_text="The response status; null: no response.")
	duration_ms = serializers.IntegerField()
	error = serializers.CharField()


class WebhookDeliveryDetailSerializer(WebhookDeliverySerializer):
	"""A delivery with what was sent, what came back, and every attempt."""

	request = _DeliveryRequestSerializer(source="*", read_only=True)
	response = _DeliveryResponseSerializer(source="*", read_only=True)
	history = _AttemptSerializer(many=True, read_only=True)

	class Meta(WebhookDeliverySerializer.Meta):
		fields = [*WebhookDeliverySerializer.Meta.fields, "request", "response", "history"]
		read_only_fields = fields
