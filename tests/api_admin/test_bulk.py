"""Bulk run operations over REST: start, cancel, retry and delete many runs (given/when/then)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.db import transaction

from tests.api_admin.conftest import PROBLEM
from workflows.context import tenant_scope
from workflows.engine.status import RunStatus, StepStatus
from workflows.models import AuditEvent, Membership, Run, RunEvent, StepRun, Tenant, User, Workflow
from workflows.roles import Role
from workflows.services import runs as run_services
from workflows.services.bulk import run_bulk_cancel, run_delete
from workflows.services.definitions import workflow_create, workflow_publish
from workflows.services.runs import run_start

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager")]

Api = Callable[..., Any]


def bulk(api: Api, action: str, data: Any, role: str = "owner") -> Any:
	return api("post", f"/api/v1/runs/bulk/{action}/", data, role=role)


def results(response: Any) -> list[dict[str, Any]]:
	assert response.status_code == 200, response.content
	return response.json()["results"]


def statuses(response: Any) -> list[int]:
	return [r["status"] for r in results(response)]


def one_run(api: Api, workflow: Workflow, **data: Any) -> str:
	response = api("post", f"/api/v1/workflows/{workflow.pk}/runs/", data)
	assert response.status_code == 201, response.content
	return response.json()["id"]


def run_status(tenant: Tenant, run_id: str) -> str:
	return Run.objects.for_tenant(tenant).get(pk=run_id).status


def bad_request(response: Any) -> dict[str, Any]:
	assert response.status_code == 400, response.content
	assert response["Content-Type"] == PROBLEM
	return response.json()


# --- start ---------------------------------------------------------------------------------------


def test_bulk_start_reports_each_item_and_starts_only_the_valid_ones(
	api: Api, flows: dict[str, Workflow], tenant: Tenant, owner: User
) -> None:
	draft = workflow_create(actor=owner, tenant=tenant, name="Draft")
	items = [
		{"workflow": "orders", "input": {"order": "A-1"}, "priority": 7, "tags": ["batch"]},
		{"workflow": str(flows["waits"].pk)},
		{"workflow": "orders", "input": {"order": 5}},
		{"workflow": "no-such-flow"},
		{"workflow": draft.slug},
	]

	response = bulk(api, "start", {"items": items})

	body = response.json()
	assert (body["succeeded"], body["failed"]) == (2, 3)
	assert statuses(response) == [201, 201, 400, 404, 409]
	first, second, bad_input, unknown, unpublished = body["results"]
	assert [r["index"] for r in body["results"]] == [0, 1, 2, 3, 4]
	assert (first["run"]["priority"], first["run"]["tags"], first["problem"]) == (7, ["batch"], None)
	assert second["run"]["workflow_slug"] == flows["waits"].slug
	# A failed item's problem is what the single start would have answered, pointers made absolute.
	assert bad_input["id"] is None
	assert bad_input["run"] is None
	assert [e["pointer"] for e in bad_input["problem"]["errors"]] == ["/items/2/input/order"]
	assert unknown["problem"]["status"] == 404
	assert "publish" in unpublished["problem"]["detail"]
	assert set(Run.objects.for_tenant(tenant).values_list("pk", flat=True)) == {
		uuid.UUID(first["id"]),
		uuid.UUID(second["id"]),
	}
	assert run_status(tenant, first["id"]) == RunStatus.SUCCEEDED


def test_bulk_start_refuses_a_malformed_request_as_a_whole(api: Api, flows: dict[str, Workflow]) -> None:
	typo = bulk(api, "start", {"items": [{"workflow": "orders"}, {"workflow": "orders", "priorty": 1}]})
	no_workflow = bulk(api, "start", {"items": [{"input": {}}]})
	not_a_list = bulk(api, "start", {"items": {"workflow": "orders"}})
	unknown = bulk(api, "start", {"items": [{"workflow": "orders"}], "dry_run": True})

	assert [e["pointer"] for e in bad_request(typo)["errors"]] == ["/items/1/priorty"]
	assert [e["pointer"] for e in bad_request(no_workflow)["errors"]] == ["/items/0/workflow"]
	assert [e["pointer"] for e in bad_request(not_a_list)["errors"]] == ["/items"]
	assert [e["pointer"] for e in bad_request(unknown)["errors"]] == ["/dry_run"]
	assert not Run.objects.for_tenant(flows["orders"].tenant).exists()


# --- cancel, retry -------------------------------------------------------------------------------


def test_bulk_cancel_cancels_what_it_can_and_says_why_not_for_the_rest(
	api: Api,
	flows: dict[str, Workflow],
	tenant: Tenant,
	tenant_factory: Callable[..., Tenant],
) -> None:
	first, second = one_run(api, flows["waits"]), one_run(api, flows["waits"])
	done = one_run(api, flows["orders"], input={"order": "A"})
	other = tenant_factory()
	other_owner = Membership.objects.for_tenant(other).get().user
	with tenant_scope(other):
		theirs = workflow_create(
			actor=other_owner, tenant=other, name="Theirs", definition=flows["waits"].draft
		)
		workflow_publish(actor=other_owner, workflow=theirs)
		foreign = str(run_start(actor=other_owner, workflow=theirs).pk)
	unknown = str(uuid.uuid4())

	response = bulk(api, "cancel", {"run_ids": [first, done, unknown, foreign, second], "reason": "cleanup"})

	assert statuses(response) == [200, 409, 404, 404, 200]
	items = results(response)
	assert [r["id"] for r in items] == [first, done, unknown, foreign, second]
	assert items[0]["run"]["status"] == RunStatus.CANCELLED
	assert "succeeded" in items[1]["problem"]["detail"]
	assert run_status(tenant, first) == run_status(tenant, second) == RunStatus.CANCELLED
	assert run_status(tenant, done) == RunStatus.SUCCEEDED
	with tenant_scope(other):
		assert run_status(other, foreign) != RunStatus.CANCELLED
	cancels = AuditEvent.objects.for_tenant(tenant).filter(action="run.cancel")
	assert set(cancels.values_list("object_id", flat=True)) == {first, second}


def test_bulk_retry_retries_failed_runs_only(api: Api, flows: dict[str, Workflow], tenant: Tenant) -> None:
	failed = [one_run(api, flows["fails"]), one_run(api, flows["fails"])]
	done = one_run(api, flows["orders"], input={"order": "A"})

	response = bulk(api, "retry", {"run_ids": [*failed, done]})

	assert statuses(response) == [200, 200, 409]
	for run_id in failed:
		attempts = StepRun.objects.for_tenant(tenant).filter(run_id=run_id, node_id="boom")
		assert attempts.count() == 2
	assert AuditEvent.objects.for_tenant(tenant).filter(action="run.retry").count() == 2


# --- delete --------------------------------------------------------------------------------------


def test_bulk_delete_removes_finished_runs_with_their_history(
	api: Api, flows: dict[str, Workflow], tenant: Tenant, owner: User
) -> None:
	done = one_run(api, flows["orders"], input={"order": "A"})
	failed = one_run(api, flows["fails"])
	waiting = one_run(api, flows["waits"])
	assert StepRun.objects.for_tenant(tenant).filter(run_id=done).exists()

	response = bulk(api, "delete", {"run_ids": [done, failed, waiting]})
	again = bulk(api, "delete", {"run_ids": [done]})

	assert statuses(response) == [204, 204, 409]
	assert results(response)[0]["run"] is None
	assert "Cancel it first" in results(response)[2]["problem"]["detail"]
	assert list(Run.objects.for_tenant(tenant).values_list("pk", flat=True)) == [uuid.UUID(waiting)]
	for gone in (done, failed):
		assert not StepRun.objects.for_tenant(tenant).filter(run_id=gone).exists()
		assert not RunEvent.objects.for_tenant(tenant).filter(run_id=gone).exists()
	audit = AuditEvent.objects.for_tenant(tenant).get(action="run.delete", object_id=done)
	assert audit.actor == owner
	assert audit.changes["@workflow"] == "orders"
	assert audit.changes["@status"] == RunStatus.SUCCEEDED
	assert statuses(again) == [404]


def test_a_cancelled_run_whose_step_is_still_stopping_cannot_be_deleted(
	api: Api, flows: dict[str, Workflow], tenant: Tenant
) -> None:
	run_id = one_run(api, flows["waits"])
	bulk(api, "cancel", {"run_ids": [run_id]})
	# A worker still executing a step of the cancelled run.
	StepRun.objects.for_tenant(tenant).filter(run_id=run_id).update(status=StepStatus.RUNNING)

	response = bulk(api, "delete", {"run_ids": [run_id]})

	assert statuses(response) == [409]
	assert "still stopping" in results(response)[0]["problem"]["detail"]
	assert Run.objects.for_tenant(tenant).filter(pk=run_id).exists()


def test_deleting_needs_the_operate_permission(
	flows: dict[str, Workflow], tenant: Tenant, owner: User, member_factory: Callable[..., User]
) -> None:
	from workflows.errors import PermissionDenied

	with tenant_scope(tenant):
		run = run_start(actor=owner, workflow=flows["fails"])
		editor = member_factory(tenant, Role.EDITOR)

		with pytest.raises(PermissionDenied):
			run_delete(actor=editor, run=run)
	assert Run.objects.for_tenant(tenant).filter(pk=run.pk).exists()


# --- permissions: the same as the single-run endpoints --------------------------------------------


@pytest.mark.parametrize(
	("role", "may_start", "may_operate"),
	[
		("viewer", False, False),
		("editor", True, False),
		("operator", True, True),
		("admin", True, True),
		("owner", True, True),
	],
)
def test_bulk_answers_each_item_as_the_single_run_endpoint_would(
	api: Api, flows: dict[str, Workflow], tenant: Tenant, role: str, may_start: bool, may_operate: bool
) -> None:
	single_start = api("post", "/api/v1/workflows/waits/runs/", {}, role=role).status_code
	bulk_start = statuses(bulk(api, "start", {"items": [{"workflow": "waits"}]}, role=role))
	waiting = [one_run(api, flows["waits"]), one_run(api, flows["waits"])]
	failed = [one_run(api, flows["fails"]), one_run(api, flows["fails"])]
	single_cancel = api("post", f"/api/v1/runs/{waiting[0]}/cancel/", {}, role=role).status_code
	bulk_cancel = statuses(bulk(api, "cancel", {"run_ids": [waiting[1]]}, role=role))
	single_retry = api("post", f"/api/v1/runs/{failed[0]}/retry/", {}, role=role).status_code
	bulk_retry = statuses(bulk(api, "retry", {"run_ids": [failed[1]]}, role=role))
	finished = one_run(api, flows["orders"], input={"order": "A"})
	bulk_delete = statuses(bulk(api, "delete", {"run_ids": [finished]}, role=role))

	assert bulk_start == [single_start] == [201 if may_start else 403]
	assert bulk_cancel == [single_cancel] == [200 if may_operate else 403]
	assert bulk_retry == [single_retry] == [200 if may_operate else 403]
	assert bulk_delete == [204 if may_operate else 403]
	assert Run.objects.for_tenant(tenant).filter(pk=finished).exists() is not may_operate


# --- one transaction per item --------------------------------------------------------------------


@pytest.fixture
def audit_fails_for(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
	"""Make the cancel of one run fail after the engine wrote its new state (a crash mid-item)."""

	def arm(run_id: str) -> None:
		original = run_services.audit_record

		def audit_record(**kwargs: Any) -> Any:
			if str(kwargs["obj"].pk) == run_id and kwargs["action"] == "run.cancel":
				raise RuntimeError("disk full")
			return original(**kwargs)

		monkeypatch.setattr(run_services, "audit_record", audit_record)

	return arm


def test_an_item_that_crashes_rolls_back_only_itself(
	api: Api,
	flows: dict[str, Workflow],
	tenant: Tenant,
	audit_fails_for: Callable[[str], None],
	caplog: pytest.LogCaptureFixture,
) -> None:
	runs = [one_run(api, flows["waits"]) for _ in range(3)]
	audit_fails_for(runs[1])

	with caplog.at_level(logging.ERROR, logger="apg.api.bulk"):
		response = bulk(api, "cancel", {"run_ids": runs})

	assert statuses(response) == [200, 500, 200]
	crashed = results(response)[1]["problem"]
	assert "disk full" not in crashed["detail"]
	assert "Other items were not affected" in crashed["detail"]
	assert [run_status(tenant, r) for r in runs] == [
		RunStatus.CANCELLED,
		RunStatus.WAITING,
		RunStatus.CANCELLED,
	]
	assert "item 1 failed unexpectedly" in caplog.text


def test_items_are_savepoints_inside_a_callers_transaction(
	api: Api, flows: dict[str, Workflow], tenant: Tenant, owner: User, audit_fails_for: Callable[[str], None]
) -> None:
	runs = [one_run(api, flows["waits"]) for _ in range(3)]
	audit_fails_for(runs[0])

	with tenant_scope(tenant), transaction.atomic():
		outcome = run_bulk_cancel(actor=owner, tenant=tenant, run_ids=runs)

	assert [r.ok for r in outcome] == [False, True, True]
	assert [run_status(tenant, r) for r in runs] == [
		RunStatus.WAITING,
		RunStatus.CANCELLED,
		RunStatus.CANCELLED,
	]


# --- request limits ------------------------------------------------------------------------------


def test_a_request_over_the_item_limit_names_the_setting(api: Api, settings: Any) -> None:
	settings.API_BULK_MAX_ITEMS = 2
	ids = [str(uuid.uuid4()) for _ in range(3)]

	too_many_ids = bad_request(bulk(api, "cancel", {"run_ids": ids}))
	# Counted before the items are checked: three malformed items give the one error.
	too_many_items = bad_request(bulk(api, "start", {"items": [{"bad": 1}] * 3}))

	assert [e["pointer"] for e in too_many_ids["errors"]] == ["/run_ids"]
	assert "API_BULK_MAX_ITEMS" in too_many_ids["detail"]
	assert "at most 2 items" in too_many_ids["errors"][0]["hint"]
	assert [e["pointer"] for e in too_many_items["errors"]] == ["/items"]


@pytest.mark.parametrize(
	("data", "pointer", "says"),
	[
		({"run_ids": []}, "/run_ids", "empty"),
		({"run_ids": ["7c3e3b8e-0b4a-4b8e-9a43-6a1f0e0a0a01", "not-a-uuid"]}, "/run_ids/1", "UUID"),
		({"run_ids": "7c3e3b8e-0b4a-4b8e-9a43-6a1f0e0a0a01"}, "/run_ids", "list"),
		({}, "/run_ids", "required"),
	],
)
def test_bad_run_id_lists_are_400(api: Api, data: dict[str, Any], pointer: str, says: str) -> None:
	errors = bad_request(bulk(api, "retry", data))["errors"]

	assert [e["pointer"] for e in errors] == [pointer]
	assert says in errors[0]["message"]


def test_a_run_listed_twice_is_refused(api: Api, flows: dict[str, Workflow], tenant: Tenant) -> None:
	run_id = one_run(api, flows["waits"])

	body = bad_request(bulk(api, "cancel", {"run_ids": [run_id, str(uuid.uuid4()), run_id.upper()]}))

	assert [e["pointer"] for e in body["errors"]] == ["/run_ids/2"]
	assert "first at index 0" in body["errors"][0]["message"]
	assert run_status(tenant, run_id) == RunStatus.WAITING


def test_cancel_options_apply_to_every_run(api: Api, flows: dict[str, Workflow], tenant: Tenant) -> None:
	runs = [one_run(api, flows["waits"]), one_run(api, flows["waits"])]

	response = bulk(api, "cancel", {"run_ids": runs, "compensate": False, "reason": "quarterly cleanup"})
	bad = bad_request(bulk(api, "cancel", {"run_ids": runs, "compensate": "maybe"}))

	assert statuses(response) == [200, 200]
	for run_id in runs:
		assert "quarterly cleanup" in str(Run.objects.for_tenant(tenant).get(pk=run_id).error)
	assert [e["pointer"] for e in bad["errors"]] == ["/compensate"]


def test_deleting_a_run_deleted_meanwhile_is_not_found(
	api: Api, flows: dict[str, Workflow], tenant: Tenant, owner: User
) -> None:
	from workflows.errors import NotFound

	run_id = one_run(api, flows["fails"])
	with tenant_scope(tenant):
		runs = Run.objects.for_tenant(tenant).select_related("workflow")
		first, stale = runs.get(pk=run_id), runs.get(pk=run_id)
		run_delete(actor=owner, run=first)

		with pytest.raises(NotFound):
			run_delete(actor=owner, run=stale)
