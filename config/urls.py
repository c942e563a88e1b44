"""URL routes: pages, health, admin, REST under /api/v1/, GraphQL."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from workflows import triggers_api, views
from workflows.graphql.view import TenantGraphQLView
from workflows.health import HealthView, ReadinessView

handler404 = "workflows.api.errors.not_found"

admin.site.site_header = "APG Workflow Orchestration"
admin.site.site_title = "APG admin"

urlpatterns = [
	path("", views.dashboard, name="dashboard"),
	path("healthz", HealthView.as_view(), name="healthz"),
	path("readyz", ReadinessView.as_view(), name="readyz"),
	path("accounts/login/", views.LoginView.as_view(), name="login"),
	path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
	path("accounts/password/", auth_views.PasswordChangeView.as_view(), name="password_change"),
	path("accounts/password/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
	path("tenants/switch/", views.tenant_switch, name="tenant-switch"),
	path("tokens/", views.tokens, name="tokens"),
	path("members/", views.members, name="members"),
	path("audit/", views.audit_log, name="audit"),
	path("admin/", admin.site.urls),
	path("api/v1/", include("workflows.api.urls")),
	path("api/v1/schema/", SpectacularAPIView.as_view(), name="api-schema"),
	path("api/v1/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
	path("api/v1/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
	path("graphql", TenantGraphQLView.as_view(), name="graphql"),
	path("hooks/<str:token>", triggers_api.webhook, name="trigger-webhook"),
]
