"""Request and response shapes of the foundation API."""

from __future__ import annotations

from rest_framework import serializers

from workflows.models import ApiToken, AuditEvent, Membership

__all__ = [
	"ApiTokenSerializer",
	"AuditEventSerializer",
	"MembershipSerializer",
	"TokenCreateSerializer",
	"TokenObtainSerializer",
]


class TokenCreateSerializer(serializers.Serializer):
	"""Create a token for the caller in the current tenant."""

	name = serializers.CharField(max_length=100)
	expires_in_days = serializers.IntegerField(min_value=1, max_value=3650, required=False)
	never_expires = serializers.BooleanField(default=False)


class TokenObtainSerializer(TokenCreateSerializer):
	"""Exchange a username and password for a token in one tenant."""

	username = serializers.CharField(max_length=150)
	password = serializers.CharField(max_length=4096, trim_whitespace=False, style={"input_type": "password"})
	tenant = serializers.SlugField(max_length=50, help_text="The organization's slug.")
	name = serializers.CharField(max_length=100, default="api")


class ApiTokenSerializer(serializers.ModelSerializer):
	"""A token as listed: never its value."""

	status = serializers.SerializerMethodField()

	class Meta:
		model = ApiToken
		fields = ["id", "name", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at", "status"]

	def get_status(self, obj: ApiToken) -> str:
		if obj.revoked_at is not None:
			return "revoked"
		return "active" if obj.is_usable() else "expired"


class MembershipSerializer(serializers.ModelSerializer):
	"""A member and their role."""

	username = serializers.CharField(source="user.username", read_only=True)
	user_id = serializers.UUIDField(read_only=True)

	class Meta:
		model = Membership
		fields = ["id", "user_id", "username", "role", "created_at"]


class AuditEventSerializer(serializers.ModelSerializer):
	"""An audit event."""

	class Meta:
		model = AuditEvent
		fields = [
			"id",
			"occurred_at",
			"actor_id",
			"actor_label",
			"action",
			"object_type",
			"object_id",
			"object_repr",
			"changes",
			"request_id",
			"ip",
		]
