"""What a client sees when something goes wrong: a message and a code, never a stack trace."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
from django.test import Client, override_settings
from graphql import GraphQLError
from rest_framework.test import APIClient

from tests.graphql.conftest import Gql
from workflows.graphql.common import camel_pointer
from workflows.graphql.errors import error_payload
from workflows.models import Tenant, User

pytestmark = pytest.mark.django_db


def test_a_bug_is_a_generic_logged_error_with_the_request_id(
	gql: Gql, caplog: pytest.LogCaptureFixture
) -> None:
	with (
		mock.patch("workflows.graphql.schema.workflow_get", side_effect=KeyError("secret internals")),
		caplog.at_level(logging.ERROR, logger="apg.graphql"),
	):
		reply = gql('{ workflow(id: "x") { id } viewer { username } }')

	assert reply.error["message"] == "An unexpected error occurred; it has been logged."
	assert reply.error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
	assert reply.error["extensions"]["requestId"]
	assert reply.error["path"] == ["workflow"]
	assert reply.data["viewer"]["username"]
	assert "secret internals" not in str(reply.errors)
	assert any("unexpected GraphQL error at workflow: KeyError" in r.getMessage() for r in caplog.records)


def test_in_debug_a_bug_shows_its_message(gql: Gql) -> None:
	with (
		mock.patch("workflows.graphql.schema.workflow_get", side_effect=KeyError("secret internals")),
		override_settings(DEBUG=True),
	):
		reply = gql('{ workflow(id: "x") { id } }')

	assert "secret internals" in reply.error["message"]
	assert reply.error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"


def test_a_syntax_error(gql: Gql) -> None:
	reply = gql("{ viewer { username }")

	assert reply.status == 400
	assert reply.codes == ["GRAPHQL_PARSE_FAILED"]
	assert "Syntax Error" in reply.error["message"]


def test_no_query_at_all(
	token_client: Callable[[User, Tenant], APIClient], tenant: Tenant, owner: User
) -> None:
	response = token_client(owner, tenant).post("/graphql", {}, format="json")

	assert response.status_code == 400
	assert response.json()["errors"] == [
		{"message": "Must provide query string.", "extensions": {"code": "BAD_REQUEST"}}
	]


def test_queries_over_get_but_not_mutations(
	token_client: Callable[[User, Tenant], APIClient], tenant: Tenant, owner: User
) -> None:
	client = token_client(owner, tenant)

	read = client.get("/graphql", {"query": "{ viewer { username } }"}, HTTP_ACCEPT="application/json")
	write = client.get(
		"/graphql",
		{"query": 'mutation { workflowCreate(name: "x") { workflow { id } } }'},
		HTTP_ACCEPT="application/json",
	)

	assert read.json()["data"]["viewer"]["username"] == owner.username
	assert write.status_code == 405
	assert write.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
	assert "POST" in write.json()["errors"][0]["message"]


def test_graphiql_only_in_debug(
	token_client: Callable[[User, Tenant], APIClient], tenant: Tenant, owner: User
) -> None:
	client = token_client(owner, tenant)

	with override_settings(DEBUG=True):
		page = client.get("/graphql", HTTP_ACCEPT="text/html")
	production = client.get("/graphql", HTTP_ACCEPT="text/html")

	assert page.status_code == 200
	assert "graphiql" in page.content.decode().lower()
	assert production.status_code == 400
	assert production["Content-Type"] == "application/json"


def test_an_error_raised_as_graphql_keeps_its_code_or_gets_bad_request() -> None:
	coded = GraphQLError("wrapped", original_error=GraphQLError("inner", extensions={"code": "MINE"}))
	plain = GraphQLError("wrapped", original_error=GraphQLError("inner"))

	assert error_payload(coded, debug=False)["extensions"]["code"] == "MINE"
	assert error_payload(plain, debug=False)["extensions"] == {"code": "BAD_REQUEST"}


@pytest.mark.parametrize(
	("rest", "graphql"),
	[
		("/created_after", "/createdAfter"),
		("/tags/0", "/tags/0"),
		("/form_data/a_b", "/formData/a_b"),
		("", ""),
	],
)
def test_pointers_name_the_graphql_arguments(rest: str, graphql: str) -> None:
	assert camel_pointer(rest) == graphql


def test_a_session_may_query_over_get(client: Client, tenant: Tenant, owner: User) -> None:
	client.force_login(owner)

	response = client.get("/graphql", {"query": "{ viewer { username } }"}, HTTP_ACCEPT="application/json")

	assert response.json()["data"]["viewer"]["username"] == owner.username


def test_refusals_before_graphql_carry_a_code_too(client: Client) -> None:
	anonymous = client.post("/graphql", {"query": "{ viewer { username } }"}, content_type="application/json")

	assert anonymous.status_code == 401
	assert anonymous.json()["errors"][0]["extensions"] == {"code": "UNAUTHENTICATED"}


def test_outside_a_request_a_bug_has_no_request_id() -> None:
	payload = error_payload(KeyError("x"), debug=False)

	assert payload == {
		"message": "An unexpected error occurred; it has been logged.",
		"extensions": {"code": "INTERNAL_SERVER_ERROR"},
	}


def test_graphql_shares_the_rest_rate_limits(
	token_client: Callable[[User, Tenant], APIClient], tenant: Tenant, owner: User, settings: Any
) -> None:
	settings.REST_FRAMEWORK = {
		**settings.REST_FRAMEWORK,
		"DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "token": "2/minute"},
	}
	client = token_client(owner, tenant)

	replies = [client.post("/graphql", {"query": "{ viewer { username } }"}, format="json") for _ in range(3)]

	assert [r.status_code for r in replies] == [200, 200, 429]
	assert replies[2].json()["errors"][0]["extensions"] == {"code": "RATE_LIMITED"}
	assert int(replies[2]["Retry-After"]) > 0
