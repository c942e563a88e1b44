"""The run list's page: the same runs as the detail shows, in a constant number of queries."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.renderers import JSONRenderer

from tests.api_runs.test_runs_api import Api, start
from workflows.api.runs_serializers import RunSerializer
from workflows.models import Run, Tenant, User, Workflow
from workflows.roles import Role

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager")]


def _as_json(data: Any) -> Any:
	return json.loads(JSONRenderer().render(data))


def test_each_listed_run_reads_as_the_run_itself(
	api: Api, flows: dict[str, Workflow], tenant: Tenant
) -> None:
	ok = start(
		api, flows["orders"], {"input": {"order": "A"}, "tags": ["nightly", "eu"], "priority": 7}
	).json()
	failed = start(api, flows["fails"], role="operator").json()
	waiting = start(api, flows["waits"]).json()
	pending = start(api, flows["waits"]).json()
	# A sub-workflow's run and a run no one started by hand (a trigger's).
	Run.objects.for_tenant(tenant).filter(pk=waiting["id"]).update(parent_run_id=ok["id"], trigger_ref="t-1")
	Run.objects.for_tenant(tenant).filter(pk=pending["id"]).update(
		started_by=None, started_at=None, status="pending", trigger_kind="cron"
	)

	listed = api("get", "/api/v1/runs/").json()["results"]

	runs = {
		str(r.pk): r
		for r in Run.objects.for_tenant(tenant).select_related("workflow", "version", "started_by")
	}
	assert [item["id"] for item in listed] == [pending["id"], waiting["id"], failed["id"], ok["id"]]
	assert listed == [_as_json(RunSerializer(runs[item["id"]]).data) for item in listed]
	assert listed[0]["started_by"] is None
	assert listed[1]["parent_run_id"] == ok["id"]
	assert listed[2]["error"]
	assert listed[3]["output"] is not None
	assert listed[3]["created_at"].endswith("Z")


def test_a_page_costs_the_same_queries_however_many_runs_and_starters_it_shows(
	api: Api,
	flows: dict[str, Workflow],
	member_factory: Callable[..., User],
	clients: dict[str, Any],
	django_assert_max_num_queries: Callable[..., Any],
) -> None:
	def page() -> int:
		with django_assert_max_num_queries(8) as captured:
			response = clients["owner"].get("/api/v1/runs/", {"limit": 50})
		assert response.status_code == 200
		return len(captured.captured_queries)

	start(api, flows["waits"])
	one = page()
	for role in ("owner", "editor", "operator"):
		for _ in range(4):
			start(api, flows["waits"], role=role)
	many = page()

	assert many == one
	assert len(clients["owner"].get("/api/v1/runs/", {"limit": 50}).json()["results"]) == 13


def test_an_authenticated_page_is_two_queries_the_token_with_its_membership_and_the_runs(
	api: Api,
	flows: dict[str, Workflow],
	clients: dict[str, Any],
	django_assert_num_queries: Callable[..., Any],
) -> None:
	start(api, flows["waits"])
	start(api, flows["orders"], {"input": {"order": "C"}})
	clients["viewer"].get("/api/v1/runs/")  # the token's first use records last_used_at

	with django_assert_num_queries(2) as captured:
		response = clients["viewer"].get("/api/v1/runs/", {"limit": 50})

	assert response.status_code == 200
	assert len(response.json()["results"]) == 2
	token, runs = (q["sql"] for q in captured.captured_queries)
	assert '"workflows_membership"' in token
	assert 'FROM "workflows_run"' in runs


def test_the_tag_filter_matches_whole_tags_only(api: Api, flows: dict[str, Workflow]) -> None:
	tagged = start(api, flows["waits"], {"tags": ["nightly"]}).json()
	start(api, flows["waits"], {"tags": ["nightly-eu", "x-nightly"]})
	start(api, flows["waits"])

	found = api("get", "/api/v1/runs/", {"tag": "nightly"}).json()["results"]
	none = api("get", "/api/v1/runs/", {"tag": "night"}).json()["results"]

	assert [r["id"] for r in found] == [tagged["id"]]
	assert none == []


def test_a_tag_page_is_one_query_too_read_through_the_tag_rows_in_their_order(
	api: Api,
	flows: dict[str, Workflow],
	clients: dict[str, Any],
	django_assert_num_queries: Callable[..., Any],
) -> None:
	start(api, flows["waits"], {"tags": ["Nightly"]})
	tagged = [start(api, flows["waits"], {"tags": ["nightly"]}).json() for _ in range(3)]
	clients["viewer"].get("/api/v1/runs/")  # the token's first use records last_used_at

	with django_assert_num_queries(2) as captured:
		first = clients["viewer"].get("/api/v1/runs/", {"tag": "nightly", "limit": 2}).json()
	with django_assert_num_queries(2):
		second = clients["viewer"].get(first["next"]).json()

	listing = captured.captured_queries[1]["sql"]
	# The tag index (tenant, tag, created_at, run) walked in order: bounded by the tag row's
	# columns, ordered by them, so the database stops after a page.
	assert 'INNER JOIN "workflows_runtag"' in listing
	assert '"workflows_runtag"."tag" = ' in listing
	assert '"workflows_runtag"."created_at" AS "tagged_at"' in listing
	assert [r["id"] for r in first["results"] + second["results"]] == [r["id"] for r in reversed(tagged)]


def test_a_viewer_sees_the_same_page_as_the_owner(api: Api, flows: dict[str, Workflow]) -> None:
	start(api, flows["orders"], {"input": {"order": "B"}})

	as_viewer = api("get", "/api/v1/runs/", role=Role.VIEWER.value).json()["results"]
	as_owner = api("get", "/api/v1/runs/").json()["results"]

	assert as_viewer == as_owner
	assert len(as_viewer) == 1
