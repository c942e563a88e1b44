"""Error responses: what the OpenAPI document promises, and the 404 for paths no route matches."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import path
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIClient

from workflows.api.base import TenantAPIView

PROBLEM = "application/problem+json"
METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
	response = APIClient().get("/api/v1/schema/", {"format": "json"})
	assert response.status_code == 200
	return response.json()


def operations(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
	return [
		(f"{method.upper()} {route}", operation)
		for route, item in document["paths"].items()
		for method, operation in item.items()
		if method in METHODS
	]


def test_every_error_response_is_documented_as_problem_json(document: dict[str, Any]) -> None:
	wrong = [
		f"{name} {code}: {sorted(response.get('content', {}))}"
		for name, operation in operations(document)
		for code, response in operation["responses"].items()
		if int(code) >= 400 and list(response.get("content", {})) != [PROBLEM]
	]

	assert not wrong, "error responses not documented as problem+json only:\n" + "\n".join(wrong)


def test_every_operation_documents_the_errors_any_client_can_get(document: dict[str, Any]) -> None:
	missing: list[str] = []
	for name, operation in operations(document):
		codes = set(operation["responses"])
		expected = {"429"}
		if name != "POST /api/v1/auth/token/":  # the one endpoint without a token (or tenant)
			expected |= {"401", "404"}
			if not name.startswith("GET"):
				expected.add("403")
		if "requestBody" in operation:
			expected |= {"400", "413", "415"}
		if any(p["in"] in ("query", "header") for p in operation.get("parameters", [])):
			expected.add("400")
		if expected - codes:
			missing.append(f"{name}: {sorted(expected - codes)}")

	assert not missing, "operations missing error responses:\n" + "\n".join(missing)


def test_the_token_endpoint_documents_bad_credentials_and_the_lockout(document: dict[str, Any]) -> None:
	responses = document["paths"]["/api/v1/auth/token/"]["post"]["responses"]

	assert {"201", "400", "401", "429"} <= set(responses)
	assert "Locked out" in responses["429"]["description"]


def test_the_audit_trail_is_documented_as_a_page(document: dict[str, Any]) -> None:
	operation = document["paths"]["/api/v1/audit-events/"]["get"]
	ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
	page = document["components"]["schemas"][ref.rsplit("/", 1)[1]]

	assert set(page["properties"]) == {"next", "previous", "results"}
	assert {"limit", "cursor"} <= {p["name"] for p in operation["parameters"]}


class _Hidden(TenantAPIView):
	@extend_schema(exclude=True)
	def get(self, request: Request) -> Response:
		return Response({})  # pragma: no cover - only its schema is read


class _Shown(TenantAPIView):
	throttle_classes = ()

	def get(self, request: Request) -> Response:
		return Response({})  # pragma: no cover - only its schema is read


def test_a_view_documents_only_the_errors_it_can_give() -> None:
	generated = SchemaGenerator(
		patterns=[path("hidden/", _Hidden.as_view()), path("shown/", _Shown.as_view())]
	).get_schema(public=True)

	assert list(generated["paths"]) == ["/shown/"]
	responses = generated["paths"]["/shown/"]["get"]["responses"]
	assert set(responses) == {"200", "401", "404"}  # no rate limit on this view: no 429
	assert responses["404"]["content"][PROBLEM]


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/api/v1/no-such-thing/", "/api/v1/runs/not-a-uuid/"])
def test_a_path_no_api_route_matches_is_a_problem_json_404(client: Client, url: str) -> None:
	response = client.get(url)

	assert response.status_code == 404
	assert response["Content-Type"] == PROBLEM
	body = response.json()
	assert body["status"] == 404
	assert url in body["detail"]
	assert "/api/v1/schema/" in body["detail"]


@pytest.mark.django_db
def test_other_unknown_pages_keep_the_html_404(client: Client) -> None:
	response = client.get("/no-such-page/")

	assert response.status_code == 404
	assert response["Content-Type"].startswith("text/html")
