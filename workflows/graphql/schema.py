"""GraphQL types and queries of the workflows app (foundation: viewer, tenant, members, audit)."""

from __future__ import annotations

from typing import Any

import graphene
from graphene_django import DjangoObjectType

from workflows.models import AuditEvent, Membership, Tenant
from workflows.permissions import membership_for
from workflows.selectors.tenancy import audit_event_list, member_list

__all__ = ["Query"]


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


class Viewer(graphene.ObjectType):
	"""The caller in the tenant the request works in."""

	username = graphene.String(required=True)
	role = graphene.String()
	tenant = graphene.Field(TenantType, required=True)


class Query(graphene.ObjectType):
	"""Root queries."""

	viewer = graphene.Field(Viewer, required=True)
	members = graphene.List(graphene.NonNull(MemberType), required=True)
	audit_events = graphene.List(
		graphene.NonNull(AuditEventType),
		required=True,
		first=graphene.Int(default_value=50),
		action=graphene.String(),
	)

	@staticmethod
	def _who(info: Any) -> tuple[Any, Tenant]:
		request = info.context
		tenant = getattr(request, "tenant", None)
		if tenant is None:
			raise PermissionError("You are not a member of any organization.")
		return request.user, tenant

	@staticmethod
	def resolve_viewer(root: Any, info: Any) -> dict[str, Any]:
		user, tenant = Query._who(info)
		membership = membership_for(user=user, tenant=tenant)
		return {
			"username": user.get_username(),
			"role": membership.role if membership else None,
			"tenant": tenant,
		}

	@staticmethod
	def resolve_members(root: Any, info: Any) -> Any:
		user, tenant = Query._who(info)
		return member_list(actor=user, tenant=tenant)

	@staticmethod
	def resolve_audit_events(root: Any, info: Any, first: int = 50, action: str | None = None) -> Any:
		user, tenant = Query._who(info)
		return audit_event_list(actor=user, tenant=tenant, action=action)[: max(0, min(first, 500))]
