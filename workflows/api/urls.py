"""REST routes of the workflows app under /api/v1/."""

from django.urls import include, path

from workflows.api import views

urlpatterns = [
	path("auth/token/", views.TokenObtainView.as_view(), name="api-token-obtain"),
	path("me/", views.MeView.as_view(), name="api-me"),
	path("tokens/", views.TokenListView.as_view(), name="api-tokens"),
	path("tokens/<uuid:token_id>/", views.TokenDetailView.as_view(), name="api-token-detail"),
	path("members/", views.MemberListView.as_view(), name="api-members"),
	path("audit-events/", views.AuditEventListView.as_view(), name="api-audit-events"),
	path("", include("workflows.api.definitions_urls")),
	path("", include("workflows.api.runs_urls")),
]
