"""ASGI entry point: HTTP to Django, WebSocket to Channels consumers (authenticated)."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from config.env import ConfigError  # noqa: E402

try:
	import django

	django.setup(set_prefix=False)
	from config.handler import ASGIHandler

	# What django.core.asgi.get_asgi_application() returns, with one thread call per request.
	django_asgi = ASGIHandler()
except ConfigError as exc:  # pragma: no cover - exercised by a subprocess test through manage.py
	sys.stderr.write(f"Configuration error: {exc}\n")
	raise SystemExit(2) from None

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import get_resolver  # noqa: E402

from config.embedded import autostart  # noqa: E402
from config.memory import freeze_startup_objects  # noqa: E402
from config.routing import websocket_urlpatterns  # noqa: E402
from workflows.ws_auth import tenant_auth_stack  # noqa: E402

# With no REDIS_URL the in-memory broker lives in this process, so the worker must too.
autostart()

application = ProtocolTypeRouter(
	{
		"http": django_asgi,
		"websocket": AllowedHostsOriginValidator(tenant_auth_stack(URLRouter(websocket_urlpatterns))),
	}
)

# Load every view now (the URL configuration is otherwise read on the first request), then
# keep what start-up made out of the garbage collector's full passes (config/memory.py).
get_resolver().url_patterns  # noqa: B018 - imports the views
freeze_startup_objects()
