"""GraphQL types of the organization: its tenant record, members and audit events."""

from __future__ import annotations

from typing import Any

import graphene
from graphene_django import DjangoObjectType

from workflows.graphql.types import connection
from workflows.models import AuditEvent, Membership, Tenant

__all__ = ["AuditEventConnection", "AuditEventType", "MemberType", "TenantType"]


class TenantType(DjangoObjectType):
	"""An organization."""

	class Meta:
		model = Tenant
		fields = ("id", "slug", "name")


class MemberType(DjangoObjectType):
	"""A member and their role."""

	username = graphene.String(required=True)

	class Meta:
		model = Membership
		fields = ("id", "role", "created_at")

	@staticmethod
	def resolve_username(root: Membership, info: Any) -> str:
		return root.user.username


class AuditEventType(DjangoObjectType):
	"""An audit event."""

	changes = graphene.JSONString()

	class Meta:
		model = AuditEvent
		fields = (
			"id",
			"occurred_at",
			"actor_label",
			"action",
			"object_type",
			"object_id",
			"object_repr",
			"request_id",
		)


AuditEventConnection = connection("AuditEvent", AuditEventType, "A page of audit events, newest first.")
