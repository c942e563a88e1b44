"""Fixtures for outgoing webhooks: a real HTTP receiver on 127.0.0.1, subscriptions, the engine.

The receiver is an ``http.server`` in a thread. Tests script its answers (``answer(500,
200)``) and read what it received; ``CONNECTOR_ALLOW_PRIVATE_NETWORKS`` is on while it runs,
since 127.0.0.1 is exactly what the network policy refuses otherwise.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.utils import timezone

from tests.api_runs import conftest as api_fixtures
from tests.engine import conftest as engine_fixtures
from workflows.models import Tenant, User, WebhookDelivery
from workflows.services.webhooks import IssuedWebhook, webhook_create

# Shared as they are (pytest finds fixtures by module attribute).
eager = engine_fixtures.eager
publish = engine_fixtures.publish
settle = engine_fixtures.settle
clients = api_fixtures.clients
api = api_fixtures.api


@dataclass
class Received:
	"""One request the receiver got."""

	path: str
	headers: dict[str, str]
	body: bytes


@dataclass
class Receiver:
	"""A webhook endpoint under test: scripted statuses, everything it received."""

	port: int = 0
	script: list[int] = field(default_factory=list)
	default: int = 200
	delay: float = 0.0
	received: list[Received] = field(default_factory=list)

	@property
	def url(self) -> str:
		return f"http://127.0.0.1:{self.port}/hooks/apg"

	def answer(self, *statuses: int) -> None:
		"""Answer the next requests with ``statuses``, in order, then with ``default``."""
		self.script.extend(statuses)


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
	class Handler(BaseHTTPRequestHandler):
		def do_POST(self) -> None:
			body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
			receiver.received.append(Received(self.path, dict(self.headers.items()), body))
			if receiver.delay:
				time.sleep(receiver.delay)
			status = receiver.script.pop(0) if receiver.script else receiver.default
			answer = b"thanks" if status < 300 else b"upstream exploded " * 1000
			try:
				self.send_response(status)
				self.send_header("Content-Type", "text/plain")
				self.send_header("Content-Length", str(len(answer)))
				self.end_headers()
				self.wfile.write(answer)
			except OSError:  # the client gave up (timeout tests)
				pass

		def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class names it so
			pass

	return Handler


@pytest.fixture
def receiver(settings: Any) -> Iterator[Receiver]:
	"""A running receiver; private networks are allowed so deliveries may reach it."""
	settings.CONNECTOR_ALLOW_PRIVATE_NETWORKS = True
	found = Receiver()
	httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(found))
	httpd.daemon_threads = True
	found.port = httpd.server_address[1]
	thread = threading.Thread(target=httpd.serve_forever, daemon=True)
	thread.start()
	try:
		yield found
	finally:
		httpd.shutdown()
		httpd.server_close()


@pytest.fixture
def subscribe(tenant: Tenant, owner: User, receiver: Receiver) -> Callable[..., IssuedWebhook]:
	"""``subscribe(event_types, url=receiver.url)``: a subscription of the owner's tenant."""

	def make(event_types: list[str] | None = None, url: str | None = None, **kwargs: Any) -> IssuedWebhook:
		return webhook_create(
			actor=owner,
			tenant=tenant,
			url=url or receiver.url,
			event_types=event_types or ["*"],
			**kwargs,
		)

	return make


def deliveries(tenant: Tenant, **filters: Any) -> list[WebhookDelivery]:
	"""The tenant's deliveries, oldest first."""
	return list(WebhookDelivery.objects.for_tenant(tenant).filter(**filters).order_by("created_at", "id"))


def make_due(delivery: WebhookDelivery) -> None:
	"""Let the clock reach a delivery's next attempt (and forget its last dispatch)."""
	WebhookDelivery.objects.for_tenant(delivery.tenant).filter(pk=delivery.pk).update(
		next_attempt_at=timezone.now() - timedelta(seconds=1), dispatched_at=None
	)


def fresh(delivery: WebhookDelivery) -> WebhookDelivery:
	"""The delivery as stored now."""
	return WebhookDelivery.objects.for_tenant(delivery.tenant).get(pk=delivery.pk)
