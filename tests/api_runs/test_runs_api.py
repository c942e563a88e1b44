"""The runs API: runs, steps, approvals, events and triggers over REST (given/when/then)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from tests.api_runs.conftest import BUDGET_FORM, approval_flow
from workflows.engine.status import RunStatus
from workflows.models import Approval, Run, StepRun, Tenant, Trigger, User, Workflow
from workflows.services.definitions import workflow_create, workflow_publish
from workflows.services.runs import run_start
from workflows.services.triggers import trigger_create

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager")]

PROBLEM = "application/problem+json"
Api = Callable[..., Any]


def problem(response: Any, status: int) -> dict[str, Any]:
	"""Assert ``response`` is a problem+json error with ``status``; its body."""
	assert response.status_code == status, response.content
	assert response["Content-Type"] == PROBLEM
	body = response.json()
	assert body["status"] == status
	return body


def pointers(response: Any) -> set[str]:
	return {e["pointer"] for e in problem(response, 400)["errors"]}


def start(api: Api, workflow: Workflow, data: dict[str, Any] | None = None, role: str = "owner") -> Any:
	return api("post", f"/api/v1/workflows/{workflow.pk}/runs/", data or {}, role=role)


# --- starting runs -------------------------------------------------------------------------------


def test_start_a_run_by_id_or_slug(api: Api, flows: dict[str, Workflow]) -> None:
	by_id = start(api, flows["orders"], {"input": {"order": "A-1"}, "priority": 9, "tags": ["nightly"]})
	by_slug = api("post", "/api/v1/workflows/orders/runs/", {"input": {"order": "A-2"}, "version": 1})

	assert by_id.status_code == 201, by_id.content
	body = by_id.json()
	# The response is written before the engine's after-commit work: the run has just started.
	assert body["status"] in (RunStatus.PENDING, RunStatus.RUNNING)
	assert api("get", f"/api/v1/runs/{body['id']}/").json()["status"] == RunStatus.SUCCEEDED
	assert (body["priority"], body["tags"], body["input"]) == (9, ["nightly"], {"order": "A-1"})
	assert (body["workflow_slug"], body["version"]) == ("orders", 1)
	assert by_slug.status_code == 201
	assert by_slug.json()["input"] == {"order": "A-2"}


def test_a_bad_input_is_refused_with_pointers_and_no_run(
	api: Api, flows: dict[str, Workflow], tenant: Tenant
) -> None:
	response = start(api, flows["orders"], {"input": {"order": 5, "amount": "lots"}})

	assert pointers(response) == {"/input/order", "/input/amount"}
	assert not Run.objects.for_tenant(tenant).exists()


@pytest.mark.parametrize(
	("data", "pointer"),
	[
		({"inputs": {}}, "/inputs"),
		({"priority": "high"}, "/priority"),
		({"priority": 12}, "/priority"),
		({"tags": "nightly"}, "/tags"),
		({"version": 0}, "/version"),
	],
)
def test_start_refuses_unknown_fields_and_wrong_types(
	api: Api, flows: dict[str, Workflow], data: dict[str, Any], pointer: str
) -> None:
	response = start(api, flows["orders"], {"input": {"order": "A"}, **data})

	assert pointers(response) == {pointer}


def test_unknown_fields_list_the_allowed_ones(api: Api, flows: dict[str, Workflow]) -> None:
	body = problem(start(api, flows["orders"], {"inputs": {}}), 400)

	assert "input, priority, tags, version" in body["errors"][0]["message"]


def test_start_an_unknown_version_or_workflow(api: Api, flows: dict[str, Workflow]) -> None:
	problem(start(api, flows["orders"], {"input": {"order": "A"}, "version": 7}), 404)
	problem(api("post", "/api/v1/workflows/nope/runs/", {}), 404)


def test_a_workflow_without_a_published_version_cannot_start(api: Api, tenant: Tenant, owner: User) -> None:
	draft = workflow_create(actor=owner, tenant=tenant, name="Draft")

	problem(start(api, draft), 409)


# --- listing and reading runs --------------------------------------------------------------------


def test_list_runs_with_filters_ordering_and_pagination(api: Api, flows: dict[str, Workflow]) -> None:
	ok = start(api, flows["orders"], {"input": {"order": "A"}, "tags": ["nightly"], "priority": 1}).json()
	failed = start(api, flows["fails"], {"priority": 8}).json()
	waiting = start(api, flows["waits"]).json()

	def ids(**params: Any) -> list[str]:
		response = api("get", "/api/v1/runs/", params)
		assert response.status_code == 200, response.content
		return [r["id"] for r in response.json()["results"]]

	assert ids() == [waiting["id"], failed["id"], ok["id"]]
	assert ids(ordering="created_at") == [ok["id"], failed["id"], waiting["id"]]
	assert ids(ordering="-priority") == [failed["id"], waiting["id"], ok["id"]]
	assert ids(ordering="priority")[0] == ok["id"]
	assert ids(workflow=str(flows["fails"].pk)) == [failed["id"]]
	assert ids(status="waiting") == [waiting["id"]]
	assert ids(tag="nightly") == [ok["id"]]
	assert ids(version=1, status="succeeded") == [ok["id"]]
	assert ids(version=2) == []
	assert len(ids(created_after=(timezone.now() - timedelta(hours=1)).isoformat())) == 3
	assert ids(created_before=(timezone.now() - timedelta(hours=1)).isoformat()) == []
	first = api("get", "/api/v1/runs/", {"limit": 2}).json()
	assert len(first["results"]) == 2
	assert first["next"]
	assert [r["id"] for r in api("get", first["next"]).json()["results"]] == [ok["id"]]


@pytest.mark.parametrize(
	("params", "pointer", "says"),
	[
		({"status": "done"}, "/status", "succeeded"),
		({"created_after": "yesterday"}, "/created_after", "format"),
		({"created_before": "2024-13-01"}, "/created_before", "format"),
		({"ordering": "name"}, "/ordering", "valid choice"),
		({"workflow": "orders"}, "/workflow", "UUID"),
		({"version": "x"}, "/version", "integer"),
	],
)
def test_bad_list_filters_are_400(api: Api, params: dict[str, str], pointer: str, says: str) -> None:
	response = api("get", "/api/v1/runs/", params)

	errors = problem(response, 400)["errors"]
	assert [e["pointer"] for e in errors] == [pointer]
	assert says in errors[0]["message"]


def test_run_detail_has_the_latest_attempt_of_each_step(api: Api, flows: dict[str, Workflow]) -> None:
	run = start(api, flows["fails"]).json()
	api("post", f"/api/v1/runs/{run['id']}/retry/")

	response = api("get", f"/api/v1/runs/{run['id']}/")

	assert response.status_code == 200
	body = response.json()
	assert body["status"] == RunStatus.FAILED
	boom = [s for s in body["steps"] if s["key"] == "root:boom"]
	assert [(s["attempt"], s["attempts"], s["status"]) for s in boom] == [(2, 2, "failed")]


def test_run_events_catch_up_in_order(api: Api, flows: dict[str, Workflow]) -> None:
	run = start(api, flows["orders"], {"input": {"order": "A"}}).json()

	everything = api("get", f"/api/v1/runs/{run['id']}/events/").json()
	after_two = api("get", f"/api/v1/runs/{run['id']}/events/", {"after": 2, "limit": 2}).json()
	bad = api("get", f"/api/v1/runs/{run['id']}/events/", {"after": -1, "limit": 0})

	seqs = [e["seq"] for e in everything["events"]]
	assert seqs == list(range(1, len(seqs) + 1))
	assert everything["last_seq"] == seqs[-1]
	assert everything["status"] == RunStatus.SUCCEEDED
	assert [e["seq"] for e in after_two["events"]] == [3, 4]
	assert pointers(bad) == {"/after", "/limit"}


def test_step_detail_has_input_output_and_every_attempt(
	api: Api, flows: dict[str, Workflow], tenant: Tenant
) -> None:
	run = start(api, flows["fails"]).json()
	api("post", f"/api/v1/runs/{run['id']}/retry/")
	first = StepRun.objects.for_tenant(tenant).get(run_id=run["id"], key="root:boom", attempt=1)

	response = api("get", f"/api/v1/steps/{first.pk}/")

	assert response.status_code == 200
	body = response.json()
	assert (body["key"], body["attempt"], body["status"]) == ("root:boom", 1, "failed")
	assert body["input"] == {"code": "nope"}
	assert body["error"]["code"] == "nope"
	assert [a["attempt"] for a in body["attempts"]] == [1, 2]


# --- lifecycle -----------------------------------------------------------------------------------


def test_pause_resume_cancel(api: Api, flows: dict[str, Workflow]) -> None:
	run = start(api, flows["waits"]).json()
	url = f"/api/v1/runs/{run['id']}"

	paused = api("post", f"{url}/pause/")
	resumed = api("post", f"{url}/resume/")
	resumed_again = api("post", f"{url}/resume/")
	cancelled = api("post", f"{url}/cancel/", {"compensate": False, "reason": "not needed"})
	cancelled_again = api("post", f"{url}/cancel/", {})

	assert paused.json()["status"] == RunStatus.PAUSED
	assert resumed.json()["status"] == RunStatus.WAITING
	assert "not paused" in problem(resumed_again, 409)["detail"]
	assert cancelled.json()["status"] == RunStatus.CANCELLED
	problem(cancelled_again, 409)


def test_cancel_and_actions_refuse_bad_bodies(api: Api, flows: dict[str, Workflow]) -> None:
	run = start(api, flows["waits"]).json()
	url = f"/api/v1/runs/{run['id']}"

	assert pointers(api("post", f"{url}/cancel/", {"compensate": "maybe"})) == {"/compensate"}
	assert pointers(api("post", f"{url}/cancel/", {"force": True})) == {"/force"}
	assert pointers(api("post", f"{url}/pause/", {"now": True})) == {"/now"}
	assert pointers(api("post", f"{url}/rerun/", {"input": {}})) == {"/input"}


def test_retry_and_rerun(api: Api, flows: dict[str, Workflow]) -> None:
	failed = start(api, flows["fails"]).json()
	done = start(api, flows["orders"], {"input": {"order": "A"}}).json()

	retried = api("post", f"/api/v1/runs/{failed['id']}/retry/")
	rerun = api("post", f"/api/v1/runs/{failed['id']}/rerun/")
	retry_done = api("post", f"/api/v1/runs/{done['id']}/retry/")

	assert retried.status_code == 200
	assert retried.json()["id"] == failed["id"]
	assert rerun.status_code == 201
	assert rerun.json()["id"] != failed["id"]
	assert rerun.json()["input"] == failed["input"]
	problem(retry_done, 409)


# --- approvals -----------------------------------------------------------------------------------


def _approval(api: Api, flows: dict[str, Workflow], tenant: Tenant) -> tuple[dict[str, Any], Approval]:
	run = start(api, flows["approval"]).json()
	return run, Approval.objects.for_tenant(tenant).get(run_id=run["id"])


def test_inbox_approve_and_decide_twice(api: Api, flows: dict[str, Workflow], tenant: Tenant) -> None:
	run, approval = _approval(api, flows, tenant)
	url = f"/api/v1/approvals/{approval.pk}"

	inbox = api("get", "/api/v1/approvals/", role="operator")
	bad_form = api("post", f"{url}/approve/", {"data": {"budget": "lots"}}, role="operator")
	unknown = api("post", f"{url}/approve/", {"decision": "yes"}, role="operator")
	approved = api("post", f"{url}/approve/", {"comment": "fine", "data": {"budget": 5}}, role="operator")
	again = api("post", f"{url}/reject/", {}, role="owner")

	assert [a["id"] for a in inbox.json()] == [str(approval.pk)]
	assert inbox.json()[0]["form_schema"] == BUDGET_FORM
	assert pointers(bad_form) == {"/data/budget"}
	assert pointers(unknown) == {"/decision"}
	assert approved.status_code == 200
	assert (approved.json()["status"], approved.json()["comment"]) == ("approved", "fine")
	assert "already approved" in problem(again, 409)["detail"]
	assert api("get", f"/api/v1/runs/{run['id']}/").json()["status"] == RunStatus.SUCCEEDED
	assert api("get", "/api/v1/approvals/", role="operator").json() == []


def test_reject_and_an_approval_of_a_finished_run(
	api: Api, flows: dict[str, Workflow], tenant: Tenant
) -> None:
	_, rejected = _approval(api, flows, tenant)
	run, orphan = _approval(api, flows, tenant)
	api("post", f"/api/v1/runs/{run['id']}/cancel/", {})

	response = api("post", f"/api/v1/approvals/{rejected.pk}/reject/", {"comment": "no"})
	too_late = api("post", f"/api/v1/approvals/{orphan.pk}/approve/", {"data": {"budget": 1}})

	assert response.json()["status"] == "rejected"
	problem(too_late, 409)


# --- events --------------------------------------------------------------------------------------


def test_publish_an_event_to_a_waiting_run(api: Api, flows: dict[str, Workflow]) -> None:
	run = start(api, flows["event"], {"input": {"order": "A-1"}}).json()

	nobody = api("post", "/api/v1/events/", {"type": "order.paid", "correlation": "B-2"})
	mine = api("post", "/api/v1/events/", {"type": "order.paid", "correlation": "A-1", "payload": {"n": 1}})

	assert nobody.status_code == 202
	assert (nobody.json()["delivered"], nobody.json()["kept"], nobody.json()["started"]) == (0, True, 0)
	assert (mine.json()["delivered"], mine.json()["kept"]) == (1, False)
	assert mine.json()["event_id"]
	assert api("get", f"/api/v1/runs/{run['id']}/").json()["status"] == RunStatus.SUCCEEDED


def test_publish_refuses_bad_events(api: Api) -> None:
	assert pointers(api("post", "/api/v1/events/", {})) == {"/type"}
	assert pointers(api("post", "/api/v1/events/", {"type": "x", "kind": "y"})) == {"/kind"}
	assert pointers(api("post", "/api/v1/events/", {"type": "   "})) == {"/type"}


# --- triggers ------------------------------------------------------------------------------------


def test_trigger_lifecycle_and_the_secret_shown_twice(api: Api, flows: dict[str, Workflow]) -> None:
	url = f"/api/v1/workflows/{flows['orders'].pk}/triggers/"

	created = api("post", url, {"name": "Hook", "kind": "webhook"})
	trigger = created.json()
	listed = api("get", url)
	detail = api("get", f"/api/v1/triggers/{trigger['id']}/")
	patched = api("patch", f"/api/v1/triggers/{trigger['id']}/", {"name": "Renamed", "priority": 7})
	disabled = api("post", f"/api/v1/triggers/{trigger['id']}/disable/")
	enabled = api("post", f"/api/v1/triggers/{trigger['id']}/enable/")
	rotated = api("post", f"/api/v1/triggers/{trigger['id']}/rotate-secret/")
	deleted = api("delete", f"/api/v1/triggers/{trigger['id']}/")

	assert created.status_code == 201, created.content
	assert trigger["secret"].startswith("whsec_")
	assert trigger["webhook_path"].startswith("/hooks/")
	assert [t["id"] for t in listed.json()] == [trigger["id"]]
	assert "secret" not in listed.json()[0]
	assert "secret" not in detail.json()
	assert (patched.json()["name"], patched.json()["priority"]) == ("Renamed", 7)
	assert "secret" not in patched.json()
	assert (disabled.json()["enabled"], disabled.json()["secret"]) == (False, None)
	assert enabled.json()["enabled"] is True
	assert rotated.json()["secret"].startswith("whsec_")
	assert rotated.json()["secret"] != trigger["secret"]
	assert deleted.status_code == 204
	problem(api("get", f"/api/v1/triggers/{trigger['id']}/"), 404)
	assert api("get", url).json() == []


def test_cron_triggers_and_their_errors(api: Api, flows: dict[str, Workflow]) -> None:
	url = f"/api/v1/workflows/{flows['orders'].pk}/triggers/"

	cron = api(
		"post",
		url,
		{"name": "Nightly", "kind": "cron", "cron_expression": "0 2 * * *", "input": {"order": "N"}},
	)
	bad = api("post", url, {"name": "x", "kind": "cron", "cron_expression": "nope", "input": {"order": 1}})
	blank = api("post", url, {"name": "", "kind": "cron"})
	unknown = api("post", url, {"name": "x", "kind": "cron", "schedule": "daily"})
	bad_kind = api("post", url, {"name": "x", "kind": "sms"})
	rotate = api("post", f"/api/v1/triggers/{cron.json()['id']}/rotate-secret/")
	bad_patch = api("patch", f"/api/v1/triggers/{cron.json()['id']}/", {"cron_expression": "61 * * * *"})
	patch_kind = api("patch", f"/api/v1/triggers/{cron.json()['id']}/", {"kind": "event"})

	assert cron.status_code == 201
	assert (cron.json()["secret"], cron.json()["next_fire_at"] is not None) == (None, True)
	assert pointers(bad) == {"/cron_expression", "/input/order"}
	assert pointers(blank) == {"/name"}
	assert pointers(unknown) == {"/schedule"}
	assert pointers(bad_kind) == {"/kind"}
	problem(rotate, 409)
	assert pointers(bad_patch) == {"/cron_expression"}
	assert pointers(patch_kind) == {"/kind"}


def test_cron_preview(api: Api) -> None:
	ok = api(
		"get", "/api/v1/cron-preview/", {"expression": "0 9 * * 1-5", "timezone": "Europe/Paris", "count": 3}
	)
	default = api("get", "/api/v1/cron-preview/", {"expression": "*/5 * * * *"})

	assert ok.status_code == 200
	assert len(ok.json()["times"]) == 3
	assert all(t.endswith(("+01:00", "+02:00")) for t in ok.json()["times"])
	assert (default.json()["timezone"], len(default.json()["times"])) == ("UTC", 10)
	assert pointers(api("get", "/api/v1/cron-preview/", {})) == {"/expression"}
	assert pointers(api("get", "/api/v1/cron-preview/", {"expression": "x", "timezone": "Mars/Base"})) >= {
		"/timezone"
	}
	assert pointers(api("get", "/api/v1/cron-preview/", {"expression": "* * * * *", "count": 0})) == {
		"/count"
	}
	assert pointers(api("get", "/api/v1/cron-preview/", {"expression": "* * * * *", "count": "x"})) == {
		"/count"
	}


# --- isolation -----------------------------------------------------------------------------------


@pytest.fixture
def foreign(
	tenant_factory: Callable[..., Tenant], user_factory: Callable[..., User], settle: Callable[..., Any]
) -> dict[str, Any]:
	"""Another tenant's workflow, run, step, approval and trigger."""
	owner_b = user_factory()
	b = tenant_factory(owner=owner_b)
	review = workflow_create(
		actor=owner_b,
		tenant=b,
		name="Theirs",
		definition=approval_flow(),
	)
	workflow_publish(actor=owner_b, workflow=review)
	run = settle(run_start, actor=owner_b, workflow=review)
	trigger = trigger_create(actor=owner_b, tenant=b, workflow=review, name="Hook", kind="webhook").trigger
	return {
		"workflow": review,
		"run": run,
		"step": StepRun.objects.for_tenant(b).filter(run=run).first(),
		"approval": Approval.objects.for_tenant(b).get(run=run),
		"trigger": trigger,
	}


def test_another_tenants_ids_are_404_everywhere(
	api: Api, foreign: dict[str, Any], flows: dict[str, Workflow], tenant: Tenant
) -> None:
	wf, run, step = foreign["workflow"].pk, foreign["run"].pk, foreign["step"].pk
	approval, trigger = foreign["approval"].pk, foreign["trigger"].pk
	calls = [
		("post", f"/api/v1/workflows/{wf}/runs/", {}),
		("post", f"/api/v1/workflows/{foreign['workflow'].slug}/runs/", {}),
		("get", f"/api/v1/runs/{run}/", None),
		("post", f"/api/v1/runs/{run}/cancel/", {}),
		("post", f"/api/v1/runs/{run}/pause/", {}),
		("post", f"/api/v1/runs/{run}/resume/", {}),
		("post", f"/api/v1/runs/{run}/retry/", {}),
		("post", f"/api/v1/runs/{run}/rerun/", {}),
		("get", f"/api/v1/runs/{run}/events/", None),
		("get", f"/api/v1/steps/{step}/", None),
		("post", f"/api/v1/approvals/{approval}/approve/", {}),
		("post", f"/api/v1/approvals/{approval}/reject/", {}),
		("get", f"/api/v1/workflows/{wf}/triggers/", None),
		("post", f"/api/v1/workflows/{wf}/triggers/", {"name": "x", "kind": "webhook"}),
		("get", f"/api/v1/triggers/{trigger}/", None),
		("patch", f"/api/v1/triggers/{trigger}/", {"name": "x"}),
		("delete", f"/api/v1/triggers/{trigger}/", None),
		("post", f"/api/v1/triggers/{trigger}/enable/", {}),
		("post", f"/api/v1/triggers/{trigger}/disable/", {}),
		("post", f"/api/v1/triggers/{trigger}/rotate-secret/", {}),
	]

	for method, url, data in calls:
		problem(api(method, url, data), 404)
	listed = api("get", "/api/v1/runs/", {"workflow": str(wf)}).json()["results"]
	inbox = api("get", "/api/v1/approvals/").json()
	assert listed == []
	assert inbox == []
	assert Run.objects.for_tenant(foreign["run"].tenant).count() == 1
	assert Trigger.objects.for_tenant(foreign["run"].tenant).get().name == "Hook"


def test_garbage_ids_are_404(api: Api) -> None:
	for url in ("/api/v1/steps/{}/", "/api/v1/triggers/{}/", "/api/v1/runs/{}/"):
		problem(api("get", url.format("0190a4b2-0000-7000-8000-000000000000")), 404)
	problem(api("post", "/api/v1/approvals/0190a4b2-0000-7000-8000-000000000000/approve/", {}), 404)


# --- roles ---------------------------------------------------------------------------------------

ROLES = ["viewer", "editor", "operator", "admin", "owner"]


def _allowed(response: Any) -> bool:
	if response.status_code == 403:
		problem(response, 403)
		return False
	assert response.status_code < 400, (response.status_code, response.content)
	return True


@pytest.mark.parametrize(
	("action", "allowed"),
	[
		("list", ROLES),
		("detail", ROLES),
		("events", ROLES),
		("step", ROLES),
		("start", ["editor", "operator", "admin", "owner"]),
		("cancel", ["operator", "admin", "owner"]),
		("pause", ["operator", "admin", "owner"]),
		("retry", ["operator", "admin", "owner"]),
		# A re-run is a start (run.start): editors may.
		("rerun", ["operator", "admin", "owner"]),
		("inbox", ["operator", "admin", "owner"]),
		("approve", ["operator", "admin", "owner"]),
		("publish", ["operator", "admin", "owner"]),
		("triggers", ROLES),
		("trigger_create", ["editor", "admin", "owner"]),
		("trigger_update", ["editor", "admin", "owner"]),
		("trigger_disable", ["editor", "admin", "owner"]),
		("cron_preview", ROLES),
	],
)
def test_role_permission_matrix(
	api: Api, flows: dict[str, Workflow], tenant: Tenant, action: str, allowed: list[str]
) -> None:
	orders = f"/api/v1/workflows/{flows['orders'].pk}"
	for role in ROLES:
		run = start(api, flows["waits"]).json()
		failed = start(api, flows["fails"]).json()
		_, approval = _approval(api, flows, tenant)
		hook = api("post", f"{orders}/triggers/", {"name": "Hook", "kind": "webhook"}).json()
		step = StepRun.objects.for_tenant(tenant).filter(run_id=failed["id"]).first()
		assert step is not None
		request: dict[str, tuple[str, str, Any]] = {
			"list": ("get", "/api/v1/runs/", None),
			"detail": ("get", f"/api/v1/runs/{run['id']}/", None),
			"events": ("get", f"/api/v1/runs/{run['id']}/events/", None),
			"step": ("get", f"/api/v1/steps/{step.pk}/", None),
			"start": ("post", f"{orders}/runs/", {"input": {"order": "A"}}),
			"cancel": ("post", f"/api/v1/runs/{run['id']}/cancel/", {}),
			"pause": ("post", f"/api/v1/runs/{run['id']}/pause/", {}),
			"retry": ("post", f"/api/v1/runs/{failed['id']}/retry/", {}),
			"rerun": ("post", f"/api/v1/runs/{failed['id']}/rerun/", {}),
			"inbox": ("get", "/api/v1/approvals/", None),
			"approve": ("post", f"/api/v1/approvals/{approval.pk}/approve/", {"data": {"budget": 1}}),
			"publish": ("post", "/api/v1/events/", {"type": "ping"}),
			"triggers": ("get", f"{orders}/triggers/", None),
			"trigger_create": ("post", f"{orders}/triggers/", {"name": "Mine", "kind": "webhook"}),
			"trigger_update": ("patch", f"/api/v1/triggers/{hook['id']}/", {"name": "Changed"}),
			"trigger_disable": ("post", f"/api/v1/triggers/{hook['id']}/disable/", {}),
			"cron_preview": ("get", "/api/v1/cron-preview/", {"expression": "* * * * *"}),
		}
		method, url, data = request[action]

		assert _allowed(api(method, url, data, role=role)) == (role in allowed), (role, action)


def test_resume_and_reject_need_an_operator(api: Api, flows: dict[str, Workflow], tenant: Tenant) -> None:
	run = start(api, flows["waits"]).json()
	api("post", f"/api/v1/runs/{run['id']}/pause/")
	_, approval = _approval(api, flows, tenant)

	problem(api("post", f"/api/v1/runs/{run['id']}/resume/", role="editor"), 403)
	problem(api("post", f"/api/v1/approvals/{approval.pk}/reject/", {}, role="editor"), 403)
	problem(api("post", f"/api/v1/triggers/{approval.pk}/enable/", {}, role="operator"), 404)
	assert api("post", f"/api/v1/runs/{run['id']}/resume/", role="operator").status_code == 200
	assert api("post", f"/api/v1/approvals/{approval.pk}/reject/", {}, role="admin").status_code == 200


def test_anonymous_requests_are_401_problems(flows: dict[str, Workflow]) -> None:
	response = APIClient().get("/api/v1/runs/")

	problem(response, 401)
