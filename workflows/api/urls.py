"""REST routes of the workflows app under /api/v1/."""

from django.urls import include, path

from workflows.api import admin, bulk, views

urlpatterns = [
	path("auth/token/", views.TokenObtainView.as_view(), name="api-token-obtain"),
	path("me/", views.MeView.as_view(), name="api-me"),
	path("tokens/", views.TokenListView.as_view(), name="api-tokens"),
	path("tokens/<uuid:token_id>/", views.TokenDetailView.as_view(), name="api-token-detail"),
	path("tenant/", admin.TenantView.as_view(), name="api-tenant"),
	path("tenants/", admin.TenantListView.as_view(), name="api-tenants"),
	path("members/", admin.MemberListView.as_view(), name="api-members"),
	path("members/<uuid:membership_id>/", admin.MemberDetailView.as_view(), name="api-member-detail"),
	path("roles/", admin.RoleListView.as_view(), name="api-roles"),
	path("runs/bulk/start/", bulk.BulkStartView.as_view(), name="api-runs-bulk-start"),
	path("runs/bulk/cancel/", bulk.BulkCancelView.as_view(), name="api-runs-bulk-cancel"),
	path("runs/bulk/retry/", bulk.BulkRetryView.as_view(), name="api-runs-bulk-retry"),
	path("runs/bulk/delete/", bulk.BulkDeleteView.as_view(), name="api-runs-bulk-delete"),
	path("events/bulk/", bulk.BulkEventsView.as_view(), name="api-events-bulk"),
	path("audit-events/", views.AuditEventListView.as_view(), name="api-audit-events"),
	path("", include("workflows.api.definitions_urls")),
	path("", include("workflows.api.runs_urls")),
	path("", include("workflows.api.webhooks_urls")),
]
