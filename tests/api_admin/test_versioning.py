"""The API version on every API response, and deprecation notices (RFC 9745, RFC 8594)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from tests.api_admin.deprecated_urls import deprecated_patterns
from workflows.api.versioning import Deprecation
from workflows.models import Tenant, User

pytestmark = pytest.mark.django_db


def test_every_api_response_names_the_api_version(
	tenant: Tenant, owner: User, token_client: Callable[[User, Tenant], APIClient], client: Client
) -> None:
	api = token_client(owner, tenant)

	answers = [
		api.get("/api/v1/me/"),
		api.post("/api/v1/runs/bulk/cancel/", {"run_ids": []}, format="json"),
		APIClient().get("/api/v1/me/"),
		api.get("/api/v1/no-such-endpoint/"),
	]

	assert [r.status_code for r in answers] == [200, 400, 401, 404]
	assert {r["API-Version"] for r in answers} == {"v1"}
	assert all("Deprecation" not in r for r in answers)
	assert "API-Version" not in client.get("/healthz")


@pytest.mark.urls("tests.api_admin.deprecated_urls")
def test_a_deprecated_view_announces_its_deprecation_and_sunset(
	tenant: Tenant, owner: User, token_client: Callable[[User, Tenant], APIClient]
) -> None:
	response = token_client(owner, tenant).get("/api/v1/old-me/")

	assert response.status_code == 200
	assert response.json() == {"tenant": tenant.slug}
	assert response["Deprecation"] == "@1767571200"  # 2026-01-05T00:00:00Z
	assert response["Sunset"] == "Tue, 01 Sep 2026 00:00:00 GMT"
	links = response["Link"]
	assert '</api/v1/old-me/?page=2>; rel="next"' in links
	assert (
		'<https://apg-workflows.dev/docs/api_versioning#old-me>; rel="deprecation"; type="text/html"' in links
	)
	assert '</api/v1/me/>; rel="successor-version"' in links
	assert response["API-Version"] == "v1"


def test_a_deprecated_view_is_flagged_in_the_openapi_document() -> None:
	schema = SchemaGenerator(patterns=deprecated_patterns).get_schema(request=None, public=True)

	assert schema["paths"]["/api/v1/old-me/"]["get"]["deprecated"] is True


@pytest.mark.parametrize(
	("announced", "sunset", "link", "says"),
	[
		(date(2026, 1, 5), date(2026, 4, 5), "https://example.com/x", "six months"),
		(date(2026, 1, 5), date(2026, 9, 1), "docs/api_versioning.md", "absolute http(s) URL"),
	],
)
def test_a_deprecation_must_keep_the_promised_notice(
	announced: date, sunset: date, link: str, says: str
) -> None:
	with pytest.raises(ValueError, match=r".") as error:
		Deprecation(announced=announced, sunset=sunset, link=link)

	assert says in str(error.value)


def test_a_deprecation_without_a_successor_links_only_its_notice() -> None:
	notice = Deprecation(announced=date(2026, 3, 1), sunset=date(2027, 3, 1), link="https://example.com/why")

	assert notice.headers()["Link"] == '<https://example.com/why>; rel="deprecation"; type="text/html"'
