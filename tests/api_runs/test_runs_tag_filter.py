"""The run list's tag filter: the runs whose tags hold the tag, read through their RunTag rows.

The answers are checked against the runs' own ``tags`` (what the filter matched before the
table existed), page by page, alone and with every other filter and ordering.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from tests.api_runs.test_runs_api import Api, start
from tests.engine.harness import linear, node
from workflows.engine.starting import create_run
from workflows.engine.status import RunStatus
from workflows.models import Run, RunTag, Tenant, User, Workflow, WorkflowVersion
from workflows.services.runs import run_start

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager")]

RUNS = "/api/v1/runs/"

_ORDER_KEYS: dict[str, tuple[Callable[[Run], tuple[Any, ...]], bool]] = {
	"-created_at": (lambda r: (r.created_at, r.pk), True),
	"created_at": (lambda r: (r.created_at, r.pk), False),
	"-priority": (lambda r: (r.priority, r.created_at, r.pk), True),
	"priority": (lambda r: (r.priority, r.created_at, r.pk), False),
}


def expected(tenant: Tenant, tag: str, ordering: str = "-created_at", **where: Any) -> list[str]:
	"""The ids the list must give: runs whose own ``tags`` hold ``tag``, filtered and ordered."""
	after, before = where.pop("created_after", None), where.pop("created_before", None)
	runs = [
		run
		for run in Run.objects.for_tenant(tenant).filter(**where)
		if tag in run.tags
		and (after is None or run.created_at >= after)
		and (before is None or run.created_at < before)
	]
	key, reverse = _ORDER_KEYS[ordering]
	return [str(run.pk) for run in sorted(runs, key=key, reverse=reverse)]


def listed(api: Api, limit: int = 4, **params: Any) -> list[str]:
	"""Every id of the list, following ``next`` from page to page."""
	body = api("get", RUNS, {**params, "limit": limit}).json()
	ids = [item["id"] for item in body["results"]]
	while body["next"]:
		body = api("get", body["next"]).json()
		ids += [item["id"] for item in body["results"]]
	return ids


def _when(run: Run, at: datetime) -> None:
	"""Move a run (and its tag rows, whose copy must follow) to ``at``."""
	Run.objects.for_tenant(run.tenant).filter(pk=run.pk).update(created_at=at)
	RunTag.objects.for_tenant(run.tenant).filter(run=run).update(created_at=at)


@pytest.fixture
def history(tenant: Tenant, flows: dict[str, Workflow], tenant_factory: Callable[..., Tenant]) -> None:
	"""30 runs of two workflows over a day, five of them created at the same instant.

	Tags: ``env:prod`` on most, ``customer:c3`` on three, ``Env:prod`` (another tag) on one;
	``customer:c3`` also on a run of another tenant.
	"""
	now = timezone.now()
	for i in range(30):
		workflow = flows["waits"] if i % 3 else flows["orders"]
		version = WorkflowVersion.objects.for_tenant(tenant).get(workflow=workflow)
		tags = ["team:ops"] if i % 7 == 0 else ["env:prod", "team:ops" if i % 2 else "team:web"]
		if i in (4, 11, 25):
			tags.append("customer:c3")
		if i == 9:
			tags = ["Env:prod"]
		run = create_run(
			tenant=tenant, workflow=workflow, version=version, input={}, priority=i % 3 * 4, tags=tags
		)
		status = [RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.WAITING][i % 3]
		Run.objects.for_tenant(tenant).filter(pk=run.pk).update(status=status)
		_when(run, now - timedelta(hours=1 if 10 <= i < 15 else i))
	other = tenant_factory()
	other_flow = publish_in(other, flows["waits"])
	create_run(
		tenant=other,
		workflow=other_flow,
		version=WorkflowVersion.objects.for_tenant(other).get(workflow=other_flow),
		input={},
		tags=["customer:c3"],
	)


def publish_in(tenant: Tenant, like: Workflow) -> Workflow:
	from workflows.models import Membership
	from workflows.roles import Role
	from workflows.services.definitions import workflow_create, workflow_publish

	owner = Membership.objects.for_tenant(tenant).get(role=Role.OWNER).user
	version = WorkflowVersion.objects.for_tenant(like.tenant).get(workflow=like)
	workflow = workflow_create(actor=owner, tenant=tenant, name=like.name, definition=version.definition)
	workflow_publish(actor=owner, workflow=workflow)
	return workflow


# --- the same runs in the same order -------------------------------------------------------------


@pytest.mark.usefixtures("history")
@pytest.mark.parametrize("tag", ["env:prod", "team:ops", "customer:c3", "Env:prod", "env:PROD", "nobody"])
@pytest.mark.parametrize("ordering", list(_ORDER_KEYS))
def test_a_tag_lists_the_runs_carrying_it_page_after_page_in_every_order(
	api: Api, tenant: Tenant, tag: str, ordering: str
) -> None:
	want = expected(tenant, tag, ordering)

	assert listed(api, tag=tag, ordering=ordering) == want
	assert len(want) == {"env:prod": 24, "team:ops": 17, "customer:c3": 3, "Env:prod": 1}.get(tag, 0)


@pytest.mark.usefixtures("history")
def test_a_tag_combines_with_status_workflow_version_and_a_time_range(
	api: Api, tenant: Tenant, flows: dict[str, Workflow]
) -> None:
	orders = flows["orders"]
	since, until = timezone.now() - timedelta(hours=12), timezone.now() - timedelta(minutes=30)

	by_status = listed(api, tag="env:prod", status="failed")
	by_workflow = listed(api, tag="env:prod", workflow=str(orders.pk))
	by_version = listed(api, tag="team:ops", version=1, status="waiting")
	in_range = listed(api, tag="env:prod", created_after=since.isoformat(), created_before=until.isoformat())
	rare_in_range = listed(api, tag="customer:c3", created_after=since.isoformat(), ordering="created_at")

	assert by_status == expected(tenant, "env:prod", status="failed") != []
	assert by_workflow == expected(tenant, "env:prod", workflow=orders) != []
	assert by_version == expected(tenant, "team:ops", version__number=1, status="waiting") != []
	assert in_range == expected(tenant, "env:prod", created_after=since, created_before=until) != []
	assert rare_in_range == expected(tenant, "customer:c3", "created_at", created_after=since) != []
	assert len(rare_in_range) == 2


@pytest.mark.usefixtures("history")
def test_going_back_from_a_tag_page_gives_the_page_before(api: Api, tenant: Tenant) -> None:
	first = api("get", RUNS, {"tag": "env:prod", "limit": 6}).json()
	second = api("get", first["next"]).json()
	third = api("get", second["next"]).json()

	back = api("get", third["previous"]).json()

	assert [r["id"] for r in back["results"]] == [r["id"] for r in second["results"]]
	assert [r["id"] for r in first["results"] + second["results"]] == expected(tenant, "env:prod")[:12]


# --- the rows follow the runs --------------------------------------------------------------------


def _tags_of(tenant: Tenant, run_id: Any) -> list[str]:
	return sorted(RunTag.objects.for_tenant(tenant).filter(run_id=run_id).values_list("tag", flat=True))


def test_every_way_of_creating_a_run_writes_its_tag_rows(
	api: Api,
	tenant: Tenant,
	owner: User,
	flows: dict[str, Workflow],
	publish: Callable[..., Workflow],
	settle: Callable[..., Any],
) -> None:
	publish(linear(node("double", "set", values="${ .input.n * 2 }")), name="Child", slug="child")
	parent_flow = publish(
		linear(node("call", "sub_workflow", workflow="child", input={"n": "${ .input.n }"})), name="Parent"
	)

	started = start(api, flows["fails"], {"tags": ["b", "a", "b"]}).json()
	bulk = api(
		"post",
		"/api/v1/runs/bulk/start/",
		{"items": [{"workflow": "orders", "input": {"order": "X"}, "tags": ["bulk"]}]},
	)
	rerun = api("post", f"/api/v1/runs/{started['id']}/rerun/").json()
	parent = settle(run_start, actor=owner, workflow=parent_flow, input={"n": 1}, tags=["family"])
	child = Run.objects.for_tenant(tenant).get(parent_run=parent)
	untagged = start(api, flows["waits"]).json()

	assert _tags_of(tenant, started["id"]) == ["a", "b"]
	assert _tags_of(tenant, bulk.json()["results"][0]["run"]["id"]) == ["bulk"]
	assert _tags_of(tenant, rerun["id"]) == ["a", "b"]
	assert (_tags_of(tenant, parent.pk), _tags_of(tenant, child.pk)) == (["family"], ["family"])
	assert _tags_of(tenant, untagged["id"]) == []
	for row in RunTag.objects.for_tenant(tenant).select_related("run"):
		assert (row.created_at, row.tenant_id) == (row.run.created_at, row.run.tenant_id)


def test_deleting_runs_deletes_their_tag_rows(api: Api, tenant: Tenant, flows: dict[str, Workflow]) -> None:
	gone = start(api, flows["orders"], {"input": {"order": "A"}, "tags": ["nightly", "eu"]}).json()
	kept = start(api, flows["orders"], {"input": {"order": "B"}, "tags": ["nightly"]}).json()

	response = api("post", "/api/v1/runs/bulk/delete/", {"run_ids": [gone["id"]]})

	assert response.status_code == 200, response.content
	assert _tags_of(tenant, gone["id"]) == []
	assert _tags_of(tenant, kept["id"]) == ["nightly"]
	assert listed(api, tag="nightly") == [kept["id"]]


@pytest.mark.django_db(transaction=True)
def test_the_migration_writes_the_rows_of_the_runs_already_there(
	api: Api, tenant: Tenant, flows: dict[str, Workflow]
) -> None:
	first = start(api, flows["waits"], {"tags": ["nightly", "eu", "nightly"]}).json()
	second = start(api, flows["waits"], {"tags": ["nightly"]}).json()
	start(api, flows["waits"])
	before = listed(api, tag="nightly")

	call_command("migrate", "workflows", "0009", verbosity=0)
	call_command("migrate", "workflows", verbosity=0)

	assert (_tags_of(tenant, first["id"]), _tags_of(tenant, second["id"])) == (["eu", "nightly"], ["nightly"])
	assert RunTag.objects.for_tenant(tenant).count() == 3
	assert listed(api, tag="nightly") == before == [second["id"], first["id"]]
