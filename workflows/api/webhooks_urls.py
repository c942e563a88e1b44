"""REST routes for outgoing webhooks (under /api/v1/)."""

from django.urls import URLPattern, path

from workflows.api import webhooks

urlpatterns: list[URLPattern] = [
	path("webhooks/", webhooks.WebhookListView.as_view(), name="api-webhooks"),
	path("webhooks/<uuid:webhook_id>/", webhooks.WebhookDetailView.as_view(), name="api-webhook-detail"),
	path(
		"webhooks/<uuid:webhook_id>/rotate-secret/",
		webhooks.WebhookRotateSecretView.as_view(),
		name="api-webhook-rotate-secret",
	),
	path(
		"webhooks/<uuid:webhook_id>/enable/",
		webhooks.WebhookToggleView.as_view(verb="enable"),
		name="api-webhook-enable",
	),
	path(
		"webhooks/<uuid:webhook_id>/disable/",
		webhooks.WebhookToggleView.as_view(verb="disable"),
		name="api-webhook-disable",
	),
	path("webhooks/<uuid:webhook_id>/ping/", webhooks.WebhookPingView.as_view(), name="api-webhook-ping"),
	path(
		"webhooks/<uuid:webhook_id>/deliveries/",
		webhooks.WebhookDeliveryListView.as_view(),
		name="api-webhook-deliveries",
	),
	path(
		"webhook-deliveries/<uuid:delivery_id>/",
		webhooks.WebhookDeliveryDetailView.as_view(),
		name="api-webhook-delivery-detail",
	),
	path(
		"webhook-deliveries/<uuid:delivery_id>/redeliver/",
		webhooks.WebhookRedeliverView.as_view(),
		name="api-webhook-delivery-redeliver",
	),
]
