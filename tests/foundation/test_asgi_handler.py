"""The ASGI handler Daphne runs answers as Django's does, with one worker-thread call per request."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import pytest
from asgiref.sync import SyncToAsync
from django.core.handlers.asgi import ASGIHandler as DjangoASGIHandler

from config.handler import ASGIHandler
from workflows.context import tenant_scope
from workflows.models import Tenant, User
from workflows.services.tokens import api_token_create

# The handler's worker threads must see the rows: no test transaction around them.
pytestmark = pytest.mark.django_db(transaction=True)

Answer = tuple[int, dict[str, str], bytes]


async def asgi_get(handler: Any, path: str, headers: list[tuple[bytes, bytes]]) -> Answer:
	"""GET ``path`` through ``handler``; the status, headers and body of the answer."""
	scope = {
		"type": "http",
		"asgi": {"version": "3.0"},
		"http_version": "1.1",
		"method": "GET",
		"scheme": "http",
		"path": path,
		"raw_path": path.encode(),
		"query_string": b"",
		"headers": [(b"host", b"testserver"), *headers],
		"client": ("127.0.0.1", 50000),
		"server": ("testserver", 80),
	}
	request_sent = False
	sent: list[Mapping[str, Any]] = []

	async def receive() -> dict[str, Any]:
		nonlocal request_sent
		if not request_sent:
			request_sent = True
			return {"type": "http.request", "body": b"", "more_body": False}
		await asyncio.Event().wait()  # the client stays connected until the answer is sent
		raise AssertionError("unreachable")

	async def send(message: Mapping[str, Any]) -> None:
		sent.append(message)

	await handler(scope, receive, send)
	start = next(m for m in sent if m["type"] == "http.response.start")
	return (
		start["status"],
		{k.decode().lower(): v.decode() for k, v in start["headers"]},
		b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"),
	)


@pytest.fixture
def bearer(tenant: Tenant, owner: User) -> list[tuple[bytes, bytes]]:
	with tenant_scope(tenant):
		raw = api_token_create(actor=owner, tenant=tenant, name="asgi").raw
	return [(b"authorization", f"Bearer {raw}".encode())]


@pytest.fixture
def thread_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
	"""The names of the functions each request hands to a worker thread (``sync_to_async``)."""
	calls: list[str] = []
	original = SyncToAsync.__call__

	async def counting(self: SyncToAsync, *args: Any, **kwargs: Any) -> Any:
		calls.append(getattr(self.func, "__qualname__", repr(self.func)))
		return await original(self, *args, **kwargs)

	monkeypatch.setattr(SyncToAsync, "__call__", counting)
	return calls


async def test_an_api_request_gets_the_same_answer_as_through_djangos_own_handler(
	bearer: list[tuple[bytes, bytes]],
) -> None:
	ours = await asgi_get(ASGIHandler(), "/api/v1/me/", bearer)
	djangos = await asgi_get(DjangoASGIHandler(), "/api/v1/me/", bearer)

	assert ours[0] == djangos[0] == 200
	assert json.loads(ours[2]) == json.loads(djangos[2])
	assert json.loads(ours[2])["role"] == "owner"
	assert set(ours[1]) == set(djangos[1])
	assert ours[1]["api-version"] == "v1"
	assert ours[1]["x-frame-options"] == "DENY"
	assert ours[1]["x-request-id"]


async def test_a_refused_token_is_a_problem_through_the_handler() -> None:
	status, headers, body = await asgi_get(
		ASGIHandler(), "/api/v1/me/", [(b"authorization", b"Bearer apg_not-a-token")]
	)

	assert status == 401
	assert headers["content-type"] == "application/problem+json"
	assert headers["www-authenticate"] == 'Bearer realm="api"'
	assert json.loads(body)["detail"] == "Invalid or expired token."


async def test_middleware_and_view_run_in_one_worker_thread_call(
	bearer: list[tuple[bytes, bytes]], thread_calls: list[str]
) -> None:
	handler = ASGIHandler()
	await asgi_get(handler, "/api/v1/me/", bearer)  # the first request of a process warms up
	thread_calls.clear()

	status, _, _ = await asgi_get(handler, "/api/v1/me/", bearer)

	assert status == 200
	# The request_started and request_finished signals, the response's close(), and the rest.
	assert thread_calls.count("BaseHandler.get_response") == 1
	assert len(thread_calls) <= 4, thread_calls
