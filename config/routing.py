"""WebSocket routes."""

from django.urls import path

from workflows.consumers import RunEventsConsumer, TenantEventsConsumer

websocket_urlpatterns = [
	# Django's path() is typed for views; Channels' URLRouter takes ASGI apps in the same slot.
	path("ws/tenant/", TenantEventsConsumer.as_asgi()),  # pyright: ignore[reportCallIssue, reportArgumentType]
	path("ws/runs/<uuid:run_id>/", RunEventsConsumer.as_asgi()),  # pyright: ignore[reportCallIssue, reportArgumentType]
]
