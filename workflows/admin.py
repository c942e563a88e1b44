"""Admin site: every model listed; superusers see all tenants, tenant admins only theirs, read-only.

Superusers' admin requests run under the named bypass (see TenantMiddleware); every change
they make here is written to the audit trail like a service call. Audit events have no
add, change or delete in the admin, for anyone.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db import models, transaction
from django.db.models import Q
from django.http import HttpRequest
from simple_history.admin import SimpleHistoryAdmin

from workflows.models import (
	ApiToken,
	Approval,
	AuditEvent,
	Event,
	EventSubscription,
	Membership,
	Run,
	RunEvent,
	RunTag,
	Secret,
	StepRun,
	Tenant,
	TenantOwnedModel,
	Timer,
	Trigger,
	User,
	WebhookDelivery,
	WebhookSubscription,
	Workflow,
	WorkflowTemplate,
	WorkflowVersion,
)
from workflows.models.audit import snapshot
from workflows.permissions import membership_for
from workflows.roles import Perm, Role, role_allows
from workflows.services.audit import audit_record

__all__ = ["TenantScopedAdmin"]


def _user(request: HttpRequest) -> User:
	user = request.user
	assert isinstance(user, User), "the admin requires a signed-in user"
	return user


def _is_superuser(request: HttpRequest) -> bool:
	return _user(request).is_superuser


def _tenant_of(obj: models.Model) -> Tenant:
	if isinstance(obj, Tenant):
		return obj
	assert isinstance(obj, TenantOwnedModel | AuditEvent)
	return obj.tenant


def _tenant_admin(request: HttpRequest) -> bool:
	tenant = getattr(request, "tenant", None)
	if tenant is None:
		return False
	membership = membership_for(user=_user(request), tenant=tenant)
	return membership is not None and role_allows(Role(membership.role), Perm.TENANT_MANAGE)


class TenantAdminPermissions(admin.ModelAdmin):
	"""Superusers may do everything; staff who administer their tenant may look, not change."""

	def has_module_permission(self, request: HttpRequest) -> bool:
		return _is_superuser(request) or (_user(request).is_staff and _tenant_admin(request))

	def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
		return self.has_module_permission(request)

	def has_add_permission(self, request: HttpRequest) -> bool:
		return _is_superuser(request)

	def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
		return _is_superuser(request)

	def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
		return _is_superuser(request)


class TenantScopedAdmin(TenantAdminPermissions):
	"""Tenant-owned rows: the default manager already filters by the bound tenant."""

	def save_model(self, request: HttpRequest, obj: models.Model, form: Any, change: bool) -> None:
		with transaction.atomic():
			before = snapshot(type(obj)._base_manager.get(pk=obj.pk)) if change else None
			super().save_model(request, obj, form, change)
			action = f"{obj._meta.model_name}.{'update' if change else 'create'}"
			audit_record(
				actor=_user(request),
				tenant=_tenant_of(obj),
				action=action,
				obj=obj,
				before=before,
				after=snapshot(obj),
			)

	def delete_model(self, request: HttpRequest, obj: models.Model) -> None:
		with transaction.atomic():
			audit_record(
				actor=_user(request),
				tenant=_tenant_of(obj),
				action=f"{obj._meta.model_name}.delete",
				obj=obj,
				before=snapshot(obj),
			)
			super().delete_model(request, obj)

	def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
		for obj in queryset:
			self.delete_model(request, obj)


@admin.register(Tenant)
class TenantAdmin(TenantScopedAdmin):
	list_display = ("name", "slug", "is_active", "created_at")
	search_fields = ("name", "slug")
	list_filter = ("is_active",)

	def get_queryset(self, request: HttpRequest) -> Any:
		queryset = super().get_queryset(request)
		if _is_superuser(request):
			return queryset
		tenant = getattr(request, "tenant", None)
		return queryset.filter(pk=tenant.pk if tenant else None)


@admin.register(Membership)
class MembershipAdmin(TenantScopedAdmin):
	list_display = ("user", "tenant", "role", "created_at", "deleted_at")
	list_filter = ("role",)
	search_fields = ("user__username",)
	raw_id_fields = ("user", "tenant", "created_by", "updated_by")


@admin.register(ApiToken)
class ApiTokenAdmin(TenantScopedAdmin):
	list_display = ("name", "prefix", "user", "tenant", "expires_at", "last_used_at", "revoked_at")
	exclude = ("key_hash",)
	readonly_fields = ("prefix", "last_used_at")
	raw_id_fields = ("user", "tenant", "created_by", "updated_by")

	def has_add_permission(self, request: HttpRequest) -> bool:
		return False  # tokens are created by their owner, who must see the value once


@admin.register(AuditEvent)
class AuditEventAdmin(TenantScopedAdmin):
	list_display = ("occurred_at", "tenant", "actor_label", "action", "object_type", "object_repr", "ip")
	list_filter = ("action", "object_type")
	search_fields = ("object_id", "object_repr", "actor_label", "request_id")

	def has_add_permission(self, request: HttpRequest) -> bool:
		return False

	def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
		return False

	def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
		return False


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
	"""Users span tenants, so only superusers manage them here."""

	def has_module_permission(self, request: HttpRequest) -> bool:
		return _is_superuser(request)

	def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
		return _is_superuser(request)


class WorkflowVersionInline(admin.TabularInline):
	"""Published versions, read-only."""

	model = WorkflowVersion
	fields = ("number", "checksum", "published_by", "published_at", "changelog")
	readonly_fields = fields
	extra = 0
	can_delete = False
	show_change_link = True

	def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
		return False

	def get_queryset(self, request: HttpRequest) -> Any:
		return WorkflowVersion.objects.with_deleted()


@admin.register(Workflow)
class WorkflowAdmin(SimpleHistoryAdmin, TenantScopedAdmin):
	list_display = ("name", "slug", "tenant", "draft_revision", "archived_at", "updated_at")
	list_filter = ("archived_at",)
	search_fields = ("name", "slug", "description")
	raw_id_fields = ("tenant", "owner", "created_by", "updated_by")
	readonly_fields = ("draft_revision",)
	inlines = (WorkflowVersionInline,)


@admin.register(WorkflowVersion)
class WorkflowVersionAdmin(TenantScopedAdmin):
	"""Versions are immutable: view only, for everyone."""

	list_display = ("workflow", "number", "checksum", "published_by", "published_at")
	search_fields = ("workflow__name", "checksum")

	def has_add_permission(self, request: HttpRequest) -> bool:
		return False

	def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
		return False

	def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
		return False


@admin.register(WorkflowTemplate)
class WorkflowTemplateAdmin(TenantAdminPermissions):
	"""Templates: superusers manage them; tenant admins see global ones and their own."""

	list_display = ("name", "slug", "tenant", "category", "industry", "version")
	list_filter = ("category", "industry")
	search_fields = ("name", "slug", "description")
	raw_id_fields = ("tenant", "published_by")

	def get_queryset(self, request: HttpRequest) -> Any:
		queryset = super().get_queryset(request)
		if _is_superuser(request):
			return queryset
		tenant = getattr(request, "tenant", None)
		return queryset.filter(Q(tenant__isnull=True) | Q(tenant=tenant))


class ReadOnlyTenantAdmin(TenantScopedAdmin):
	"""Execution records: written only by the engine, so read-only in the admin for everyone."""

	def has_add_permission(self, request: HttpRequest) -> bool:
		return False

	def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
		return False

	def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
		return False


@admin.register(Run)
class RunAdmin(ReadOnlyTenantAdmin):
	list_display = (
		"id",
		"workflow",
		"tenant",
		"status",
		"priority",
		"trigger_kind",
		"created_at",
		"finished_at",
	)
	list_filter = ("status", "trigger_kind")
	search_fields = ("id",)


@admin.register(StepRun)
class StepRunAdmin(ReadOnlyTenantAdmin):
	list_display = ("key", "run", "node_type", "attempt", "status", "worker", "started_at", "finished_at")
	list_filter = ("status", "node_type")
	search_fields = ("key", "run__id")


@admin.register(RunEvent)
class RunEventAdmin(ReadOnlyTenantAdmin):
	list_display = ("run", "seq", "type", "step_key", "created_at")
	list_filter = ("type",)


@admin.register(RunTag)
class RunTagAdmin(ReadOnlyTenantAdmin):
	list_display = ("tag", "run", "tenant", "created_at")
	search_fields = ("tag", "run__id")


@admin.register(Timer)
class TimerAdmin(ReadOnlyTenantAdmin):
	list_display = ("run", "key", "purpose", "fire_at")


@admin.register(EventSubscription)
class EventSubscriptionAdmin(ReadOnlyTenantAdmin):
	list_display = ("run", "key", "event_type", "correlation")


@admin.register(Event)
class EventAdmin(ReadOnlyTenantAdmin):
	list_display = ("type", "correlation", "tenant", "delivered", "consumed_at", "created_at")
	list_filter = ("type",)


@admin.register(Approval)
class ApprovalAdmin(ReadOnlyTenantAdmin):
	list_display = ("title", "run", "status", "role", "deadline_at", "decided_by", "decided_at")
	list_filter = ("status",)


@admin.register(Trigger)
class TriggerAdmin(ReadOnlyTenantAdmin):
	"""Triggers are managed through their services (validation, audit); the signing secret is never shown."""

	list_display = ("name", "kind", "workflow", "tenant", "enabled", "next_fire_at", "last_fired_at")
	list_filter = ("kind", "enabled")
	exclude = ("secret",)


@admin.register(Secret)
class SecretAdmin(ReadOnlyTenantAdmin):
	"""Secrets are set through their service; the admin shows names only, never values."""

	list_display = ("name", "tenant", "description", "updated_at")
	exclude = ("ciphertext",)


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(ReadOnlyTenantAdmin):
	"""Webhooks are managed through their services (validation, audit); the signing secret is never shown."""

	list_display = ("url", "tenant", "active", "consecutive_failures", "disabled_at", "created_at")
	list_filter = ("active",)
	exclude = ("ciphertext",)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyTenantAdmin):
	list_display = ("event_type", "subscription", "status", "attempts", "response_status", "created_at")
	list_filter = ("status", "event_type")
	search_fields = ("id", "event_id", "run_id")
