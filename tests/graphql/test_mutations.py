"""Changing things over GraphQL: every mutation calls the same service as REST, with the same refusals."""

from __future__ import annotations

from typing import Any

import pytest

from tests.graphql.conftest import Gql
from workflows.models import (
	Approval,
	AuditEvent,
	Event,
	Run,
	Tenant,
	User,
	Workflow,
	WorkflowTemplate,
	WorkflowVersion,
)
from workflows.services.definitions import workflow_create, workflow_update

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager")]

CREATE = (
	"mutation($name: String!, $slug: String, $tags: [String!], $definition: JSON, $description: String) {"
	" workflowCreate(name: $name, slug: $slug, tags: $tags, definition: $definition, description: $description)"
	" { workflow { id slug name tags draftRevision draft } } }"
)
UPDATE = (
	"mutation($id: ID!, $rev: Int, $name: String, $definition: JSON, $tags: [String!]) {"
	" workflowUpdate(id: $id, expectedRevision: $rev, name: $name, definition: $definition, tags: $tags)"
	" { workflow { name draftRevision } } }"
)
START = (
	"mutation($w: ID!, $input: JSON, $version: Int, $priority: Int, $tags: [String!]) {"
	" runStart(workflowId: $w, input: $input, version: $version, priority: $priority, tags: $tags)"
	" { run { id status priority tags input versionNumber } } }"
)


def start(gql: Gql, workflow: str, **variables: Any) -> dict[str, Any]:
	return gql(START, {"w": workflow, **variables}).ok()["runStart"]["run"]


def act(gql: Gql, verb: str, run_id: str, role: str = "owner", arguments: str = "") -> Any:
	return gql(
		f"mutation($id: ID!) {{ {verb}(id: $id{arguments}) {{ run {{ id status input }} }} }}",
		{"id": run_id},
		role=role,
	)


# --- workflows -----------------------------------------------------------------------------------


def test_create_a_workflow_with_its_draft_and_audit(gql: Gql, tenant: Tenant) -> None:
	created = gql(CREATE, {"name": "Pay invoices", "tags": ["money"], "description": "monthly"}).ok()

	workflow = created["workflowCreate"]["workflow"]
	assert (workflow["slug"], workflow["tags"], workflow["draftRevision"]) == ("pay-invoices", ["money"], 1)
	assert [node["id"] for node in workflow["draft"]["nodes"]] == ["start", "end"]
	assert (
		AuditEvent.objects.for_tenant(tenant)
		.filter(action="workflow.create", object_id=workflow["id"])
		.exists()
	)


@pytest.mark.parametrize(
	("variables", "pointer"),
	[
		({"name": "x", "slug": "Not A Slug"}, "/slug"),
		({"name": "x", "definition": [1, 2]}, "/definition"),
		({"name": "x", "tags": ["y" * 51]}, "/tags/0"),
		({"name": "   "}, "/name"),
	],
)
def test_create_refuses_bad_fields_with_pointers(gql: Gql, variables: dict[str, Any], pointer: str) -> None:
	reply = gql(CREATE, variables)

	assert reply.pointers() == {pointer}
	assert reply.data == {"workflowCreate": None}


def test_create_a_taken_slug_is_a_conflict(gql: Gql, tenant: Tenant, owner: User) -> None:
	workflow_create(actor=owner, tenant=tenant, name="Taken")

	reply = gql(CREATE, {"name": "Taken"})

	assert reply.codes == ["CONFLICT"]
	assert "exists already" in reply.error["message"]


def test_update_with_the_revision_read(gql: Gql, tenant: Tenant, owner: User) -> None:
	workflow = workflow_create(actor=owner, tenant=tenant, name="Flow")
	draft = {
		**workflow.draft,
		"nodes": [*workflow.draft["nodes"][:1], {**workflow.draft["nodes"][1], "name": "Done"}],
	}

	updated = gql(UPDATE, {"id": "flow", "rev": 1, "name": "Renamed", "definition": draft}).ok()
	unconditional = gql(UPDATE, {"id": str(workflow.pk), "tags": ["a"]}).ok()

	assert updated["workflowUpdate"]["workflow"] == {"name": "Renamed", "draftRevision": 2}
	assert unconditional["workflowUpdate"]["workflow"]["draftRevision"] == 2
	workflow.refresh_from_db()
	assert (workflow.name, workflow.tags, workflow.draft["nodes"][1]["name"]) == ("Renamed", ["a"], "Done")


def test_update_with_a_stale_revision_is_refused_and_says_the_current_one(
	gql: Gql, tenant: Tenant, owner: User
) -> None:
	workflow = workflow_create(actor=owner, tenant=tenant, name="Flow")
	workflow_update(actor=owner, workflow=workflow, definition={**workflow.draft, "edges": []})

	reply = gql(UPDATE, {"id": str(workflow.pk), "rev": 1, "name": "Mine"})

	assert reply.codes == ["CONFLICT"]
	assert reply.error["extensions"]["currentRevision"] == 2
	assert "revision 1, now 2" in reply.error["message"]
	workflow.refresh_from_db()
	assert workflow.name == "Flow"


def test_update_conflicts_that_are_not_about_the_revision(gql: Gql, tenant: Tenant, owner: User) -> None:
	workflow_create(actor=owner, tenant=tenant, name="Taken")
	workflow = workflow_create(actor=owner, tenant=tenant, name="Mine")

	reply = gql(
		'mutation($id: ID!) { workflowUpdate(id: $id, expectedRevision: 1, slug: "taken") { workflow { slug } } }',
		{"id": str(workflow.pk)},
	)

	assert reply.codes == ["CONFLICT"]
	assert "currentRevision" not in reply.error["extensions"]


def test_update_refuses_bad_fields(gql: Gql, tenant: Tenant, owner: User) -> None:
	workflow_create(actor=owner, tenant=tenant, name="Flow")

	assert gql(UPDATE, {"id": "flow", "definition": "text"}).pointers() == {"/definition"}
	assert gql(UPDATE, {"id": "flow", "name": "n" * 201}).pointers() == {"/name"}


def test_publish_then_publish_the_same_draft_again(gql: Gql, tenant: Tenant, owner: User) -> None:
	workflow_create(actor=owner, tenant=tenant, name="Flow")
	query = 'mutation { workflowPublish(id: "flow", changelog: "first") { created version { number changelog } } }'

	first = gql(query).ok()["workflowPublish"]
	again = gql(query).ok()["workflowPublish"]

	assert first == {"created": True, "version": {"number": 1, "changelog": "first"}}
	assert again == {"created": False, "version": {"number": 1, "changelog": "first"}}
	assert WorkflowVersion.objects.for_tenant(tenant).count() == 1


def test_publish_an_invalid_draft_lists_every_problem(gql: Gql, tenant: Tenant, owner: User) -> None:
	workflow_create(
		actor=owner,
		tenant=tenant,
		name="Broken",
		definition={"schema_version": "1.0", "nodes": [], "edges": []},
	)

	reply = gql('mutation { workflowPublish(id: "broken") { created } }')

	assert reply.codes == ["VALIDATION"]
	assert all(p.startswith("/definition") for p in reply.pointers())
	assert "problem" in reply.error["message"]


def test_instantiate_a_template(gql: Gql, tenant: Tenant) -> None:
	WorkflowTemplate.objects.create(
		slug="onboarding",
		name="Onboarding",
		category="HR",
		industry="Any",
		definition={"schema_version": "1.0", "nodes": [], "edges": []},
	)
	query = "mutation($id: ID!, $name: String) { templateInstantiate(id: $id, name: $name) { workflow { slug name draft } } }"

	as_is = gql(query, {"id": "onboarding"}).ok()["templateInstantiate"]["workflow"]
	renamed = gql(query, {"id": "onboarding", "name": "Onboarding EU"}).ok()["templateInstantiate"][
		"workflow"
	]
	taken = gql(query, {"id": "onboarding"})
	missing = gql(query, {"id": "nope"})

	assert (as_is["slug"], as_is["draft"]["schema_version"]) == ("onboarding", "1.0")
	assert (renamed["slug"], renamed["name"]) == ("onboarding-eu", "Onboarding EU")
	assert taken.codes == ["CONFLICT"]
	assert missing.codes == ["NOT_FOUND"]
	assert Workflow.objects.for_tenant(tenant).count() == 2


# --- runs ----------------------------------------------------------------------------------------


def test_start_a_run_with_input_priority_and_tags(gql: Gql, flows: dict[str, Workflow]) -> None:
	run = start(gql, "orders", input={"order": "A-1"}, priority=9, tags=["nightly"], version=1)

	assert (run["priority"], run["tags"], run["input"], run["versionNumber"]) == (
		9,
		["nightly"],
		{"order": "A-1"},
		1,
	)
	assert run["status"] in ("PENDING", "RUNNING")
	assert (
		gql("query($id: ID!) { run(id: $id) { status } }", {"id": run["id"]}).ok()["run"]["status"]
		== "SUCCEEDED"
	)


def test_a_bad_input_is_refused_with_pointers_and_no_run(
	gql: Gql, flows: dict[str, Workflow], tenant: Tenant
) -> None:
	reply = gql(START, {"w": "orders", "input": {"order": 5, "amount": "lots"}})

	assert reply.pointers() == {"/input/order", "/input/amount"}
	assert not Run.objects.for_tenant(tenant).exists()


@pytest.mark.parametrize(
	("variables", "pointer"),
	[({"priority": 12}, "/priority"), ({"tags": [""]}, "/tags/0"), ({"version": 0}, "/version")],
)
def test_start_refuses_bad_options(
	gql: Gql, flows: dict[str, Workflow], variables: dict[str, Any], pointer: str
) -> None:
	assert gql(START, {"w": "orders", "input": {"order": "A"}, **variables}).pointers() == {pointer}


def test_start_an_unknown_version_or_an_unpublished_workflow(
	gql: Gql, flows: dict[str, Workflow], tenant: Tenant, owner: User
) -> None:
	workflow_create(actor=owner, tenant=tenant, name="Draft only")

	assert gql(START, {"w": "orders", "input": {"order": "A"}, "version": 7}).codes == ["NOT_FOUND"]
	assert gql(START, {"w": "draft-only"}).codes == ["CONFLICT"]
	assert gql(START, {"w": "nope"}).codes == ["NOT_FOUND"]


def test_pause_resume_cancel(gql: Gql, flows: dict[str, Workflow]) -> None:
	run = start(gql, "waits")

	paused = act(gql, "runPause", run["id"]).ok()["runPause"]["run"]
	resumed = act(gql, "runResume", run["id"]).ok()["runResume"]["run"]
	resumed_again = act(gql, "runResume", run["id"])
	cancelled = gql(
		'mutation($id: ID!) { runCancel(id: $id, compensate: false, reason: "not needed") { run { status } } }',
		{"id": run["id"]},
	).ok()["runCancel"]["run"]
	cancelled_again = act(gql, "runCancel", run["id"])

	assert (paused["status"], resumed["status"], cancelled["status"]) == ("PAUSED", "WAITING", "CANCELLED")
	assert resumed_again.codes == ["CONFLICT"]
	assert "not paused" in resumed_again.error["message"]
	assert cancelled_again.codes == ["CONFLICT"]


def test_cancel_refuses_a_reason_too_long(gql: Gql, flows: dict[str, Workflow]) -> None:
	run = start(gql, "waits")

	reply = gql(
		"mutation($id: ID!, $r: String) { runCancel(id: $id, reason: $r) { run { id } } }",
		{"id": run["id"], "r": "x" * 501},
	)

	assert reply.pointers() == {"/reason"}


def test_retry_and_rerun(gql: Gql, flows: dict[str, Workflow]) -> None:
	failed = start(gql, "fails")
	done = start(gql, "orders", input={"order": "A"})

	retried = act(gql, "runRetry", failed["id"]).ok()["runRetry"]["run"]
	rerun = act(gql, "runRerun", failed["id"]).ok()["runRerun"]["run"]
	retry_done = act(gql, "runRetry", done["id"])

	assert retried["id"] == failed["id"]
	assert rerun["id"] != failed["id"]
	assert rerun["input"] == {}
	assert retry_done.codes == ["CONFLICT"]


# --- approvals and events ------------------------------------------------------------------------

DECIDE = "mutation($id: ID!, $comment: String, $data: JSON) {{ {verb}(id: $id, comment: $comment, data: $data) {{ approval {{ id status comment data decidedBy decidedAt }} }} }}"


def _approval(gql: Gql, tenant: Tenant) -> tuple[dict[str, Any], Approval]:
	run = start(gql, "review")
	return run, Approval.objects.for_tenant(tenant).get(run_id=run["id"])


def test_approve_with_form_data_then_decide_twice(
	gql: Gql, flows: dict[str, Workflow], tenant: Tenant
) -> None:
	run, approval = _approval(gql, tenant)
	approve = DECIDE.format(verb="approvalApprove")

	bad_form = gql(approve, {"id": str(approval.pk), "data": {"budget": "lots"}}, role="operator")
	approved = gql(
		approve, {"id": str(approval.pk), "comment": "fine", "data": {"budget": 5}}, role="operator"
	)
	again = gql(DECIDE.format(verb="approvalReject"), {"id": str(approval.pk)})

	assert bad_form.pointers() == {"/data/budget"}
	decided = approved.ok()["approvalApprove"]["approval"]
	assert (decided["status"], decided["comment"], decided["data"]) == ("APPROVED", "fine", {"budget": 5})
	assert decided["decidedBy"]
	assert decided["decidedAt"]
	assert again.codes == ["CONFLICT"]
	assert "already approved" in again.error["message"]
	assert (
		gql("query($id: ID!) { run(id: $id) { status } }", {"id": run["id"]}).ok()["run"]["status"]
		== "SUCCEEDED"
	)


def test_reject_and_an_approval_of_a_cancelled_run(
	gql: Gql, flows: dict[str, Workflow], tenant: Tenant
) -> None:
	_, rejected = _approval(gql, tenant)
	run, orphan = _approval(gql, tenant)
	act(gql, "runCancel", run["id"]).ok()

	reply = gql(DECIDE.format(verb="approvalReject"), {"id": str(rejected.pk), "comment": "no"}).ok()
	too_late = gql(DECIDE.format(verb="approvalApprove"), {"id": str(orphan.pk), "data": {"budget": 1}})

	assert reply["approvalReject"]["approval"]["status"] == "REJECTED"
	assert too_late.codes == ["CONFLICT"]


def test_an_approval_assigned_to_another_role(gql: Gql, flows: dict[str, Workflow], tenant: Tenant) -> None:
	_, approval = _approval(gql, tenant)
	Approval.objects.for_tenant(tenant).filter(pk=approval.pk).update(role="admin")

	reply = gql(
		DECIDE.format(verb="approvalApprove"),
		{"id": str(approval.pk), "data": {"budget": 1}},
		role="operator",
	)

	assert reply.codes == ["PERMISSION_DENIED"]
	assert reply.error["message"] == "This approval is assigned to other people."


def test_publish_an_event_to_a_waiting_run(gql: Gql, flows: dict[str, Workflow], tenant: Tenant) -> None:
	run = start(gql, "paid", input={"order": "A-1"})
	query = 'mutation($c: JSON, $p: JSON) { eventPublish(type: "order.paid", correlation: $c, payload: $p) { eventId delivered kept started } }'

	nobody = gql(query, {"c": "B-2"}).ok()["eventPublish"]
	mine = gql(query, {"c": "A-1", "p": {"n": 1}}).ok()["eventPublish"]

	assert (nobody["delivered"], nobody["kept"], nobody["started"]) == (0, True, 0)
	assert (mine["delivered"], mine["kept"]) == (1, False)
	assert Event.objects.for_tenant(tenant).get(pk=mine["eventId"]).source == "graphql"
	assert (
		gql("query($id: ID!) { run(id: $id) { status } }", {"id": run["id"]}).ok()["run"]["status"]
		== "SUCCEEDED"
	)


def test_publish_refuses_a_blank_type(gql: Gql) -> None:
	assert gql('mutation { eventPublish(type: "   ") { eventId } }').pointers() == {"/type"}
	assert gql('mutation { eventPublish(type: "' + "t" * 201 + '") { eventId } }').pointers() == {"/type"}
