"""REST endpoints for administering a tenant: the tenant itself, its members and their roles.

Reads go through workflows/selectors/tenancy.py and writes through workflows/services/tenancy.py,
which check the role (``tenant.manage``, ``member.manage``; only owners touch owners) and
refuse to remove or demote the last owner (409).

Members are added from the instance's existing user accounts, by username or email: a
self-hosted instance's accounts are created by its operator (Django admin, ``createsuperuser``,
single sign-on), and a tenant admin then gives them a role here. There are no e-mailed
invitations.
"""

from __future__ import annotations

from typing import Any

from django.db.models import F
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from workflows.api.base import TenantAPIView
from workflows.api.runs import problem_responses
from workflows.api.runs_serializers import StrictSerializer
from workflows.api.serializers import MembershipSerializer
from workflows.errors import FieldError, NotFound, ValidationFailed
from workflows.models import Membership, Tenant, User
from workflows.permissions import membership_for, require
from workflows.roles import ROLE_PERMISSIONS, Perm, Role
from workflows.selectors.tenancy import member_list, tenant_list_for_user
from workflows.services.tenancy import (
	membership_add,
	membership_change_role,
	membership_remove,
	tenant_update,
)

__all__ = ["MemberDetailView", "MemberListView", "RoleListView", "TenantListView", "TenantView"]

_ROLE_HELP = "One of: " + ", ".join(r.value for r in Role) + " (least to most trusted)."


# --- shapes --------------------------------------------------------------------------------------


class TenantSerializer(serializers.Serializer):
	"""The tenant a request works in, and the caller's role in it."""

	id = serializers.UUIDField(read_only=True)
	slug = serializers.SlugField(read_only=True)
	name = serializers.CharField(read_only=True)
	created_at = serializers.DateTimeField(read_only=True)
	role = serializers.CharField(read_only=True, help_text="Your role here.")


class TenantUpdateSerializer(StrictSerializer):
	"""What an admin may change about the tenant (the slug stays: it is in URLs and tokens)."""

	name = serializers.CharField(max_length=200, help_text="The organization's display name.")


class MyTenantSerializer(serializers.Serializer):
	"""A tenant the caller belongs to."""

	id = serializers.UUIDField()
	slug = serializers.SlugField()
	name = serializers.CharField()
	role = serializers.CharField(help_text="Your role there.")
	current = serializers.BooleanField(help_text="Whether this request works in it (a token's tenant).")


class MemberAddSerializer(StrictSerializer):
	"""An existing user account to add, by username or by email (exactly one), and its role."""

	username = serializers.CharField(max_length=150, required=False)
	email = serializers.EmailField(required=False)
	role = serializers.CharField(max_length=16, help_text=_ROLE_HELP)

	def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
		if ("username" in attrs) == ("email" in attrs):
			raise serializers.ValidationError(
				"Give the account's username or its email, not both and not neither."
			)
		return attrs


class MemberRoleSerializer(StrictSerializer):
	"""A member's new role."""

	role = serializers.CharField(max_length=16, help_text=_ROLE_HELP)


class RoleSerializer(serializers.Serializer):
	"""A role and everything it allows."""

	role = serializers.CharField()
	permissions = serializers.ListField(child=serializers.CharField())

	def get_fields(self) -> dict[str, serializers.Field]:
		# ``label`` is also a Field property: declared here so the two do not clash.
		fields = super().get_fields()
		fields["label"] = serializers.CharField(help_text="For display.")
		return fields


def _parse(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
	parsed = serializer_class(data=data)
	parsed.is_valid(raise_exception=True)
	return dict(parsed.validated_data)


# --- lookups -------------------------------------------------------------------------------------
# Reads workflows/selectors has no function for yet, kept private here until they move there.


def _account(*, username: str | None, email: str | None) -> User:
	"""The active account to add. Accounts are instance-wide, so an unknown one is a 400."""
	if username is not None:
		found = list(User.objects.filter(username=username, is_active=True)[:1])
		pointer, what = "/username", f"username {username!r}"
	else:
		found = list(User.objects.filter(email__iexact=email, is_active=True)[:2])
		pointer, what = "/email", f"email {email!r}"
		if len(found) > 1:
			raise ValidationFailed(
				[FieldError(pointer, f"Several accounts use the {what}.", "Add the member by username.")],
				f"Several accounts use the {what}.",
			)
	if not found:
		raise ValidationFailed(
			[
				FieldError(
					pointer,
					f"No active account has the {what}.",
					"Accounts are created by the instance's operator (the admin site or "
					"'manage.py createsuperuser'); ask them to create it, then add it here.",
				)
			],
			f"No active account has the {what}.",
		)
	return found[0]


def _member(actor: User, tenant: Tenant, membership_id: Any) -> Membership:
	membership = member_list(actor=actor, tenant=tenant).filter(pk=membership_id).first()
	if membership is None:
		raise NotFound()
	return membership


def _role_of(actor: User, tenant: Tenant) -> str | None:
	membership = membership_for(user=actor, tenant=tenant)
	return membership.role if membership is not None else None


# --- tenant --------------------------------------------------------------------------------------


class TenantView(TenantAPIView):
	"""The tenant this request works in: read it (members), rename it (``PATCH``, admins)."""

	def _shape(self, tenant: Tenant) -> dict[str, Any]:
		data = {"id": tenant.pk, "slug": tenant.slug, "name": tenant.name, "created_at": tenant.created_at}
		return TenantSerializer({**data, "role": _role_of(self.actor, tenant)}).data

	@extend_schema(
		operation_id="tenant_retrieve",
		responses={200: TenantSerializer, **problem_responses(403)},
		tags=["tenancy"],
	)
	def get(self, request: Request) -> Response:
		require(actor=self.actor, tenant=self.tenant, perm=Perm.TENANT_VIEW)
		return Response(self._shape(self.tenant))

	@extend_schema(
		operation_id="tenant_update",
		request=TenantUpdateSerializer,
		responses={200: TenantSerializer, **problem_responses(400, 403)},
		tags=["tenancy"],
	)
	def patch(self, request: Request) -> Response:
		values = _parse(TenantUpdateSerializer, request.data)
		return Response(self._shape(tenant_update(actor=self.actor, tenant=self.tenant, name=values["name"])))


class TenantListView(TenantAPIView):
	"""The tenants the caller belongs to, with their role in each. A token works in one of them."""

	@extend_schema(
		operation_id="tenants_list",
		responses={200: MyTenantSerializer(many=True)},
		tags=["tenancy"],
	)
	def get(self, request: Request) -> Response:
		# The role comes through the same membership join the selector filters on.
		tenants = tenant_list_for_user(user=self.actor).annotate(my_role=F("memberships__role"))
		return Response(
			MyTenantSerializer(
				[
					{
						"id": t.pk,
						"slug": t.slug,
						"name": t.name,
						"role": t.my_role,  # pyright: ignore[reportAttributeAccessIssue]
						"current": t.pk == self.tenant.pk,
					}
					for t in tenants
				],
				many=True,
			).data
		)


# --- members -------------------------------------------------------------------------------------

_MEMBER_PARAM = OpenApiParameter(
	"membership_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="A membership's id (`id`)."
)


class MemberListView(TenantAPIView):
	"""The tenant's members and their roles; add an existing account as a member (admins)."""

	@extend_schema(
		operation_id="members_list",
		responses={200: MembershipSerializer(many=True), **problem_responses(403)},
		tags=["tenancy"],
	)
	def get(self, request: Request) -> Response:
		return Response(
			MembershipSerializer(member_list(actor=self.actor, tenant=self.tenant), many=True).data
		)

	@extend_schema(
		operation_id="members_create",
		request=MemberAddSerializer,
		responses={201: MembershipSerializer, **problem_responses(400, 403, 409)},
		tags=["tenancy"],
	)
	def post(self, request: Request) -> Response:
		values = _parse(MemberAddSerializer, request.data)
		require(actor=self.actor, tenant=self.tenant, perm=Perm.MEMBER_MANAGE)
		user = _account(username=values.get("username"), email=values.get("email"))
		membership = membership_add(actor=self.actor, tenant=self.tenant, user=user, role=values["role"])
		return Response(MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)


class MemberDetailView(TenantAPIView):
	"""One member: read, change the role (``PATCH``, admins), remove (``DELETE``; anyone may leave)."""

	@extend_schema(
		operation_id="members_retrieve",
		parameters=[_MEMBER_PARAM],
		responses={200: MembershipSerializer, **problem_responses(403, 404)},
		tags=["tenancy"],
	)
	def get(self, request: Request, membership_id: str) -> Response:
		return Response(MembershipSerializer(_member(self.actor, self.tenant, membership_id)).data)

	@extend_schema(
		operation_id="members_update",
		parameters=[_MEMBER_PARAM],
		request=MemberRoleSerializer,
		responses={200: MembershipSerializer, **problem_responses(400, 403, 404, 409)},
		tags=["tenancy"],
	)
	def patch(self, request: Request, membership_id: str) -> Response:
		# Resolved first: another tenant's member is the same 404 whatever the body says.
		membership = _member(self.actor, self.tenant, membership_id)
		values = _parse(MemberRoleSerializer, request.data)
		changed = membership_change_role(
			actor=self.actor, tenant=self.tenant, membership=membership, role=values["role"]
		)
		return Response(MembershipSerializer(changed).data)

	@extend_schema(
		operation_id="members_destroy",
		parameters=[_MEMBER_PARAM],
		responses={204: None, **problem_responses(403, 404, 409)},
		tags=["tenancy"],
	)
	def delete(self, request: Request, membership_id: str) -> Response:
		membership = _member(self.actor, self.tenant, membership_id)
		membership_remove(actor=self.actor, tenant=self.tenant, membership=membership)
		return Response(status=status.HTTP_204_NO_CONTENT)


# --- roles ---------------------------------------------------------------------------------------


class RoleListView(TenantAPIView):
	"""Every role, least to most trusted, with the permissions it carries (workflows/roles.py)."""

	@extend_schema(
		operation_id="roles_list",
		responses={200: RoleSerializer(many=True), **problem_responses(403)},
		tags=["tenancy"],
	)
	def get(self, request: Request) -> Response:
		require(actor=self.actor, tenant=self.tenant, perm=Perm.TENANT_VIEW)
		roles = [
			{"role": r.value, "label": r.label, "permissions": sorted(p.value for p in ROLE_PERMISSIONS[r])}
			for r in Role
		]
		return Response(RoleSerializer(roles, many=True).data)
