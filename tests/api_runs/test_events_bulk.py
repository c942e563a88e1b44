"""Publishing many events in one request: POST /api/v1/events/bulk/."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api_runs.test_runs_api import Api, pointers, problem, start
from workflows.engine.status import RunStatus
from workflows.errors import ValidationFailed
from workflows.models import AuditEvent, Event, Tenant, User, Workflow
from workflows.services import runs as run_services
from workflows.services.runs import EventItem, EventOutcome, event_publish_many, run_start

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager")]

URL = "/api/v1/events/bulk/"


def paid(order: str, **extra: Any) -> dict[str, Any]:
	return {"type": "order.paid", "correlation": order, **extra}


def test_a_batch_resumes_every_waiting_run_and_keeps_the_rest(
	api: Api, flows: dict[str, Workflow], tenant: Tenant
) -> None:
	runs = [start(api, flows["event"], {"input": {"order": f"A-{i}"}}).json() for i in range(3)]

	response = api(
		"post", URL, {"events": [paid("A-0"), paid("A-1", payload={"n": 1}), paid("B-9"), paid("A-2")]}
	)

	assert response.status_code == 200, response.content
	body = response.json()
	assert (body["succeeded"], body["failed"]) == (4, 0)
	assert [r["status"] for r in body["results"]] == [202] * 4
	assert [(r["event"]["delivered"], r["event"]["kept"]) for r in body["results"]] == [
		(1, False),
		(1, False),
		(0, True),
		(1, False),
	]
	for run in runs:
		assert api("get", f"/api/v1/runs/{run['id']}/").json()["status"] == RunStatus.SUCCEEDED
	assert Event.objects.for_tenant(tenant).count() == 4
	audit = AuditEvent.objects.for_tenant(tenant).filter(action="event.publish_many").get()
	assert (audit.changes["@events"], audit.changes["@delivered"]) == (4, 3)


def test_the_service_refuses_a_bad_event_alone(flows: dict[str, Workflow], owner: User, settle: Any) -> None:
	run = settle(run_start, actor=owner, workflow=flows["event"], input={"order": "A-1"})

	results = settle(
		event_publish_many,
		actor=owner,
		tenant=run.tenant,
		events=[EventItem("   "), EventItem("order.paid", "A-1")],
	)

	assert isinstance(results[0], ValidationFailed)
	assert [e.pointer for e in results[0].errors] == ["/type"]
	assert isinstance(results[1], EventOutcome)
	assert results[1].delivered == 1
	run.refresh_from_db()
	assert run.status == RunStatus.SUCCEEDED


def test_a_nul_anywhere_refuses_the_whole_request(api: Api, tenant: Tenant) -> None:
	response = api("post", URL, {"events": [paid("X"), paid("B", payload={"note": "a\u0000b"})]})

	assert "/events/1/payload/note" in problem(response, 400)["detail"]
	assert not Event.objects.for_tenant(tenant).exists()


def test_an_unexpected_failure_takes_back_only_its_own_event(
	api: Api, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
	publish_one = run_services._publish

	def flaky(tenant: Tenant, type: str, correlation: Any, *args: Any, **options: Any) -> Any:
		if correlation == "boom":
			Event.objects.for_tenant(tenant).create(tenant=tenant, type=type, correlation="half-done")
			raise RuntimeError("disk on fire")
		return publish_one(tenant, type, correlation, *args, **options)

	monkeypatch.setattr(run_services, "_publish", flaky)

	response = api("post", URL, {"events": [paid("A"), paid("boom"), paid("C")]})

	body = response.json()
	assert [r["status"] for r in body["results"]] == [202, 500, 202]
	assert "disk on fire" not in str(body)  # no internals reach the client
	assert sorted(Event.objects.for_tenant(tenant).values_list("correlation", flat=True)) == ['"A"', '"C"']


def test_the_request_as_a_whole_is_checked_first(api: Api, settings: Any, tenant: Tenant) -> None:
	settings.API_BULK_MAX_ITEMS = 2

	assert pointers(api("post", URL, {"events": []})) == {"/events"}
	assert pointers(api("post", URL, {"events": [paid("A")] * 3})) == {"/events"}
	assert pointers(api("post", URL, {"events": [{"type": "x", "kind": "y"}]})) == {"/events/0/kind"}
	assert problem(api("post", URL, {"events": [paid("A")]}, role="viewer"), 403)
	assert not Event.objects.for_tenant(tenant).exists()
