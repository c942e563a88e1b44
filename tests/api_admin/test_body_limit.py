"""Request bodies over API_MAX_BODY_BYTES are refused with 413 on /api/, /graphql and /hooks/."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from config.handler import ASGIHandler
from tests.api_admin.conftest import PROBLEM
from workflows.models import ApiToken, Event, Tenant, User

LIMIT = 2048


@pytest.fixture
def small_limit(settings: Any) -> int:
	settings.API_MAX_BODY_BYTES = LIMIT
	return LIMIT


def too_large(status: int, content_type: str, body: bytes) -> dict[str, Any]:
	assert status == 413, body
	assert content_type == PROBLEM
	problem = json.loads(body)
	assert problem["status"] == 413
	assert "2 KiB (2048 bytes, API_MAX_BODY_BYTES)" in problem["detail"]
	assert "split a bulk request" in problem["detail"]
	return problem


def big_json(size: int = 5000) -> str:
	return json.dumps({"type": "order.paid", "payload": {"blob": "x" * size}})


@pytest.mark.django_db
def test_an_api_body_over_the_limit_is_413_naming_the_limit(
	tenant: Tenant, owner: User, token_client: Callable[[User, Tenant], APIClient], small_limit: int
) -> None:
	body = big_json()

	response = token_client(owner, tenant).post("/api/v1/events/", body, content_type="application/json")

	problem = too_large(response.status_code, response["Content-Type"], response.content)
	assert f"({len(body)} bytes)" in problem["detail"]
	assert response["API-Version"] == "v1"
	assert response["X-Request-ID"] == problem["request_id"]
	assert not Event.objects.for_tenant(tenant).exists()


@pytest.mark.django_db
def test_bodies_within_the_limit_reach_every_parser(
	tenant: Tenant, owner: User, token_client: Callable[[User, Tenant], APIClient], small_limit: int
) -> None:
	client = token_client(owner, tenant)

	as_json = client.post("/api/v1/tokens/", {"name": "json"}, format="json")
	as_multipart = client.post("/api/v1/tokens/", {"name": "multipart"})
	as_form = client.post("/api/v1/tokens/", "name=form", content_type="application/x-www-form-urlencoded")

	assert [r.status_code for r in (as_json, as_multipart, as_form)] == [201, 201, 201]
	names = set(ApiToken.objects.for_tenant(tenant).values_list("name", flat=True))
	assert {"json", "multipart", "form"} <= names


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/graphql", "/hooks/some-webhook-token"])
def test_graphql_and_webhook_bodies_over_the_limit_are_413(
	client: Client, small_limit: int, path: str
) -> None:
	response = client.post(path, big_json(), content_type="application/json")

	too_large(response.status_code, response["Content-Type"], response.content)


@pytest.mark.django_db
def test_other_pages_are_not_subject_to_the_api_limit(client: Client, small_limit: int) -> None:
	response = client.post("/accounts/login/", {"username": "someone", "password": "x" * 5000})

	assert response.status_code == 401  # the sign-in form again, refusing the credentials


# --- through the ASGI server path (as daphne serves it) ------------------------------------------


async def asgi_post(
	path: str, chunks: list[bytes], headers: list[tuple[bytes, bytes]]
) -> tuple[int, dict[str, str], bytes]:
	"""POST ``chunks`` as one streamed request body; the status, headers and body of the answer."""
	scope = {
		"type": "http",
		"asgi": {"version": "3.0"},
		"http_version": "1.1",
		"method": "POST",
		"scheme": "http",
		"path": path,
		"raw_path": path.encode(),
		"query_string": b"",
		"headers": [(b"host", b"testserver"), (b"content-type", b"application/json"), *headers],
		"client": ("127.0.0.1", 50000),
		"server": ("testserver", 80),
	}
	messages = [
		{"type": "http.request", "body": chunk, "more_body": index < len(chunks) - 1}
		for index, chunk in enumerate(chunks)
	]
	sent: list[Mapping[str, Any]] = []

	async def receive() -> dict[str, Any]:
		if messages:
			return messages.pop(0)
		await asyncio.Event().wait()  # the client stays connected until the answer is sent
		raise AssertionError("unreachable")

	async def send(message: Mapping[str, Any]) -> None:
		sent.append(message)

	await ASGIHandler()(scope, receive, send)
	start = next(m for m in sent if m["type"] == "http.response.start")
	headers_out = {k.decode().lower(): v.decode() for k, v in start["headers"]}
	return (
		start["status"],
		headers_out,
		b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"),
	)


def _chunks(data: bytes, size: int = 700) -> list[bytes]:
	return [data[i : i + size] for i in range(0, len(data), size)]


async def test_a_chunked_body_without_content_length_is_measured(small_limit: int) -> None:
	status, headers, body = await asgi_post("/api/v1/events/", _chunks(big_json().encode()), [])

	problem = too_large(status, headers["content-type"], body)
	assert "bytes)" not in problem["detail"].split("limit")[0]


async def test_an_understated_content_length_does_not_let_a_large_body_through(small_limit: int) -> None:
	status, headers, body = await asgi_post(
		"/api/v1/events/", _chunks(big_json().encode()), [(b"content-length", b"10")]
	)

	too_large(status, headers["content-type"], body)


async def test_a_chunked_body_within_the_limit_is_parsed_not_taken_for_empty(small_limit: int) -> None:
	data = json.dumps({"username": "someone", "password": "secret", "tenant": "Not A Slug!"}).encode()

	status, headers, body = await asgi_post("/api/v1/auth/token/", _chunks(data, 16), [])

	assert status == 400, body
	# An empty body would have been refused for every missing field instead.
	assert [e["pointer"] for e in json.loads(body)["errors"]] == ["/tenant"]
	assert headers["api-version"] == "v1"
