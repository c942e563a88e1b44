"""WebSocket routes."""

from django.urls import path

from workflows.consumers import TenantEventsConsumer

websocket_urlpatterns = [
	# Django's path() is typed for views; Channels' URLRouter takes ASGI apps in the same slot.
	path("ws/tenant/", TenantEventsConsumer.as_asgi()),  # pyright: ignore[reportCallIssue, reportArgumentType]
]
