"""Reading over GraphQL: workflows, versions, runs, steps, events, approvals, templates, audit."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from tests.api_runs.conftest import BUDGET_FORM
from tests.graphql.conftest import Gql
from workflows.engine.status import RunStatus
from workflows.models import Approval, Run, StepRun, Tenant, User, Workflow, WorkflowTemplate
from workflows.services.definitions import (
	workflow_archive,
	workflow_create,
	workflow_publish,
	workflow_update,
)
from workflows.services.runs import run_retry, run_start

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager")]


def start(gql: Gql, workflow: Workflow, **arguments: Any) -> dict[str, Any]:
	"""Start a run over GraphQL; its id and status."""
	reply = gql(
		"mutation($w: ID!, $i: JSON, $p: Int, $t: [String!]) {"
		" runStart(workflowId: $w, input: $i, priority: $p, tags: $t) { run { id status } } }",
		{
			"w": str(workflow.pk),
			"i": arguments.get("input"),
			"p": arguments.get("priority"),
			"t": arguments.get("tags"),
		},
	)
	return reply.ok()["runStart"]["run"]


def run_ids(gql: Gql, **filters: Any) -> list[str]:
	reply = gql(
		"query($f: Int, $s: RunStatus, $w: ID, $v: Int, $t: String, $a: DateTime, $b: DateTime, $o: RunOrdering) {"
		" runs(first: $f, status: $s, workflow: $w, version: $v, tag: $t, createdAfter: $a,"
		" createdBefore: $b, ordering: $o) { edges { node { id } } } }",
		{
			"f": filters.get("first"),
			"s": filters.get("status"),
			"w": filters.get("workflow"),
			"v": filters.get("version"),
			"t": filters.get("tag"),
			"a": filters.get("after"),
			"b": filters.get("before"),
			"o": filters.get("ordering"),
		},
	)
	return [edge["node"]["id"] for edge in reply.ok()["runs"]["edges"]]


# --- workflows and versions ----------------------------------------------------------------------


def test_workflows_by_id_and_slug_with_draft_and_versions(gql: Gql, tenant: Tenant, owner: User) -> None:
	workflow = workflow_create(actor=owner, tenant=tenant, name="Billing", tags=["money"])
	workflow_publish(actor=owner, workflow=workflow, changelog="first")
	workflow_update(actor=owner, workflow=workflow, description="second try")
	renamed = {
		**workflow.draft,
		"nodes": [*workflow.draft["nodes"][:1], {**workflow.draft["nodes"][1], "name": "Finish"}],
	}
	workflow_update(actor=owner, workflow=workflow, definition=renamed)
	workflow_publish(actor=owner, workflow=workflow)
	query = (
		"query($id: ID!) { workflow(id: $id) { id slug name tags draftRevision isArchived"
		" draft description versions { edges { node { number changelog checksum workflow { slug } } } } } }"
	)

	by_id = gql(query, {"id": str(workflow.pk)}).ok()["workflow"]
	by_slug = gql(query, {"id": "billing"}).ok()["workflow"]

	assert by_id == by_slug
	assert (by_id["slug"], by_id["tags"], by_id["draftRevision"], by_id["isArchived"]) == (
		"billing",
		["money"],
		2,
		False,
	)
	assert by_id["draft"]["nodes"][1]["name"] == "Finish"
	versions = [edge["node"] for edge in by_id["versions"]["edges"]]
	assert [(v["number"], v["changelog"], v["workflow"]["slug"]) for v in versions] == [
		(2, "", "billing"),
		(1, "first", "billing"),
	]


def test_workflow_list_filters_order_and_archived(gql: Gql, tenant: Tenant, owner: User) -> None:
	alpha = workflow_create(actor=owner, tenant=tenant, name="Alpha", tags=["nightly"])
	beta = workflow_create(actor=owner, tenant=tenant, name="Beta", description="pays invoices")
	gone = workflow_create(actor=owner, tenant=tenant, name="Gamma")
	workflow_archive(actor=owner, workflow=gone)

	def names(arguments: str = "") -> list[str]:
		reply = gql(f"{{ workflows{arguments} {{ edges {{ node {{ name }} }} }} }}")
		return [edge["node"]["name"] for edge in reply.ok()["workflows"]["edges"]]

	assert names() == [beta.name, alpha.name]
	assert names("(ordering: NAME, includeArchived: true)") == ["Alpha", "Beta", "Gamma"]
	assert names('(tag: "nightly")') == ["Alpha"]
	assert names('(search: "invoice")') == ["Beta"]


def test_a_workflow_version_by_number(gql: Gql, flows: dict[str, Workflow]) -> None:
	query = "query($w: ID!, $n: Int!) { workflowVersion(workflowId: $w, number: $n) { number definition } }"

	found = gql(query, {"w": "orders", "n": 1})
	missing = gql(query, {"w": "orders", "n": 9})

	assert found.ok()["workflowVersion"]["number"] == 1
	assert found.ok()["workflowVersion"]["definition"]["schema_version"] == "1.0"
	assert missing.codes == ["NOT_FOUND"]
	assert missing.error["message"] == "Version 9 does not exist."
	assert missing.data == {"workflowVersion": None}


# --- runs ----------------------------------------------------------------------------------------


def test_runs_filters_and_ordering_match_rest(gql: Gql, flows: dict[str, Workflow]) -> None:
	ok = start(gql, flows["orders"], input={"order": "A"}, tags=["nightly"], priority=1)
	failed = start(gql, flows["fails"], priority=8)
	waiting = start(gql, flows["waits"])
	hour_ago = (timezone.now() - timedelta(hours=1)).isoformat()

	assert run_ids(gql) == [waiting["id"], failed["id"], ok["id"]]
	assert run_ids(gql, ordering="CREATED_AT") == [ok["id"], failed["id"], waiting["id"]]
	assert run_ids(gql, ordering="PRIORITY_DESC") == [failed["id"], waiting["id"], ok["id"]]
	assert run_ids(gql, ordering="PRIORITY")[0] == ok["id"]
	assert run_ids(gql, workflow=str(flows["fails"].pk)) == [failed["id"]]
	assert run_ids(gql, status="WAITING") == [waiting["id"]]
	assert run_ids(gql, tag="nightly") == [ok["id"]]
	assert run_ids(gql, version=1, status="SUCCEEDED") == [ok["id"]]
	assert run_ids(gql, version=2) == []
	assert len(run_ids(gql, after=hour_ago)) == 3
	assert run_ids(gql, before=hour_ago) == []


def test_runs_by_tag_match_the_whole_tag_exactly_as_rest_does(gql: Gql, flows: dict[str, Workflow]) -> None:
	lower = start(gql, flows["waits"], tags=["nightly"])
	start(gql, flows["waits"], tags=["Nightly", "nightly-eu"])

	assert run_ids(gql, tag="nightly") == [lower["id"]]
	assert run_ids(gql, tag="NIGHTLY") == []


def test_a_run_with_its_workflow_version_steps_and_attempts(gql: Gql, flows: dict[str, Workflow]) -> None:
	run = start(gql, flows["fails"], tags=["t"])
	gql("mutation($id: ID!) { runRetry(id: $id) { run { id } } }", {"id": run["id"]}).ok()

	found = gql(
		"query($id: ID!) { run(id: $id) { id status isFinished tags startedBy versionNumber lastSeq"
		" workflow { slug } version { number }"
		" steps { key status attempt attemptCount input error run { id }"
		" attempts { attempt status error } } } }",
		{"id": run["id"]},
	).ok()["run"]

	assert (found["status"], found["isFinished"], found["tags"]) == ("FAILED", True, ["t"])
	assert found["startedBy"]
	assert (found["workflow"]["slug"], found["version"]["number"], found["versionNumber"]) == ("fails", 1, 1)
	assert [step["key"] for step in found["steps"]] == ["root:start", "root:boom"]
	boom = found["steps"][1]
	assert (boom["attempt"], boom["attemptCount"], boom["status"]) == (2, 2, "FAILED")
	assert boom["input"] == {"code": "nope"}
	assert [a["attempt"] for a in boom["attempts"]] == [1, 2]
	assert boom["attempts"][0]["error"]["code"] == "nope"
	assert boom["run"]["id"] == run["id"]
	assert found["lastSeq"] > 0


def test_a_step_by_the_id_of_any_attempt(gql: Gql, flows: dict[str, Workflow], tenant: Tenant) -> None:
	run = start(gql, flows["fails"])
	gql("mutation($id: ID!) { runRetry(id: $id) { run { id } } }", {"id": run["id"]}).ok()
	first = StepRun.objects.for_tenant(tenant).get(run_id=run["id"], key="root:boom", attempt=1)

	step = gql(
		"query($id: ID!) { step(id: $id) { id key attempt attemptCount frame nodeId nodeType"
		" runId run { status } attempts { id attempt } } }",
		{"id": str(first.pk)},
	).ok()["step"]

	assert (step["id"], step["key"], step["attempt"], step["attemptCount"]) == (
		str(first.pk),
		"root:boom",
		1,
		2,
	)
	assert (step["nodeId"], step["nodeType"], step["frame"]) == ("boom", "task", "root")
	assert step["runId"] == run["id"]
	assert step["run"]["status"] == "FAILED"
	assert [a["attempt"] for a in step["attempts"]] == [1, 2]


def test_run_events_after_a_sequence(gql: Gql, flows: dict[str, Workflow]) -> None:
	run = start(gql, flows["orders"], input={"order": "A"})
	query = "query($id: ID!, $a: Int, $f: Int) { run(id: $id) { lastSeq events(after: $a, first: $f) { seq type stepKey data createdAt } } }"

	everything = gql(query, {"id": run["id"]}).ok()["run"]
	after_two = gql(query, {"id": run["id"], "a": 2, "f": 2}).ok()["run"]

	seqs = [event["seq"] for event in everything["events"]]
	assert seqs == list(range(1, len(seqs) + 1))
	assert everything["lastSeq"] == seqs[-1]
	assert [event["seq"] for event in after_two["events"]] == [3, 4]
	assert everything["events"][0]["type"]


def test_events_of_several_runs_in_one_list(gql: Gql, flows: dict[str, Workflow]) -> None:
	first = start(gql, flows["orders"], input={"order": "A"})
	second = start(gql, flows["waits"])

	runs = gql("{ runs { edges { node { id lastSeq events(first: 3) { seq } } } } }").ok()["runs"]["edges"]

	by_id = {edge["node"]["id"]: edge["node"] for edge in runs}
	assert [e["seq"] for e in by_id[first["id"]]["events"]] == [1, 2, 3]
	assert [e["seq"] for e in by_id[second["id"]]["events"]] == [1, 2, 3]


def test_workflow_runs_nested_with_filters(gql: Gql, flows: dict[str, Workflow]) -> None:
	done = start(gql, flows["orders"], input={"order": "A"})
	waiting = start(gql, flows["waits"])

	workflows = gql(
		"{ workflows(ordering: NAME) { edges { node { slug all: runs { edges { node { id } } }"
		" waiting: runs(status: WAITING) { edges { node { id status } } } } } } }"
	).ok()["workflows"]["edges"]

	by_slug = {edge["node"]["slug"]: edge["node"] for edge in workflows}
	assert [e["node"]["id"] for e in by_slug["orders"]["all"]["edges"]] == [done["id"]]
	assert by_slug["orders"]["waiting"]["edges"] == []
	assert [e["node"]["id"] for e in by_slug["waits"]["waiting"]["edges"]] == [waiting["id"]]
	assert by_slug["fails"]["all"]["edges"] == []


# --- approvals, templates, audit -----------------------------------------------------------------


def test_my_approval_inbox_and_one_approval(gql: Gql, flows: dict[str, Workflow], tenant: Tenant) -> None:
	run = start(gql, flows["approval"])
	approval = Approval.objects.for_tenant(tenant).get(run_id=run["id"])

	inbox = gql(
		"{ approvals { edges { node { id title role status isOpen formSchema assignees run { id status steps { key } } } } } }",
		role="operator",
	).ok()["approvals"]["edges"]
	one = gql("query($id: ID!) { approval(id: $id) { id runId decidedBy } }", {"id": str(approval.pk)}).ok()

	assert [edge["node"]["id"] for edge in inbox] == [str(approval.pk)]
	node = inbox[0]["node"]
	assert (node["role"], node["status"], node["isOpen"]) == ("operator", "OPEN", True)
	assert node["formSchema"] == BUDGET_FORM
	assert node["run"]["status"] == "WAITING"
	assert "root:review" in [step["key"] for step in node["run"]["steps"]]
	assert one["approval"] == {"id": str(approval.pk), "runId": run["id"], "decidedBy": None}


def test_templates_global_and_own_with_filters(gql: Gql, flows: dict[str, Workflow], tenant: Tenant) -> None:
	WorkflowTemplate.objects.create(
		slug="shipped", name="Shipped", category="Finance", industry="Retail", tags=["x"], definition={}
	)
	own = WorkflowTemplate.objects.create(
		tenant=tenant, slug="own", name="Own", category="Ops", industry="Any", definition={"a": 1}
	)

	def slugs(arguments: str = "") -> list[str]:
		reply = gql(f"{{ templates{arguments} {{ edges {{ node {{ slug isGlobal }} }} }} }}")
		return [edge["node"]["slug"] for edge in reply.ok()["templates"]["edges"]]

	assert set(slugs()) >= {"shipped", "own"}
	assert slugs('(category: "ops")') == ["own"]
	assert slugs('(industry: "retail", tag: "x")') == ["shipped"]
	assert slugs('(search: "Shipp")') == ["shipped"]
	by_slug = gql('{ template(id: "own") { id definition sampleInput isGlobal version } }').ok()["template"]
	assert by_slug == {
		"id": str(own.pk),
		"definition": {"a": 1},
		"sampleInput": {},
		"isGlobal": False,
		"version": 1,
	}


def test_audit_log_filters_and_pages(gql: Gql, tenant: Tenant, owner: User) -> None:
	for n in range(3):
		workflow_create(actor=owner, tenant=tenant, name=f"Flow {n}")
	query = (
		"query($a: String, $f: Int, $after: String, $actor: ID, $since: DateTime, $type: String) {"
		" auditLog(action: $a, first: $f, after: $after, actorId: $actor, since: $since, objectType: $type)"
		" { edges { node { action objectRepr actorLabel } } pageInfo { hasNextPage endCursor } } }"
	)

	first = gql(query, {"a": "workflow.create", "f": 2}).ok()["auditLog"]
	rest = gql(query, {"a": "workflow.create", "f": 2, "after": first["pageInfo"]["endCursor"]}).ok()[
		"auditLog"
	]
	mine = gql(query, {"actor": str(owner.pk), "type": "workflows.workflow"}).ok()["auditLog"]
	future = gql(query, {"since": (timezone.now() + timedelta(days=1)).isoformat()}).ok()["auditLog"]

	reprs = [e["node"]["objectRepr"] for e in first["edges"] + rest["edges"]]
	assert reprs == ["Flow 2", "Flow 1", "Flow 0"]
	assert first["pageInfo"]["hasNextPage"] is True
	assert rest["pageInfo"]["hasNextPage"] is False
	assert len(mine["edges"]) == 3
	assert future["edges"] == []


def test_the_old_audit_events_list_still_answers(gql: Gql, tenant: Tenant, owner: User) -> None:
	workflow_create(actor=owner, tenant=tenant, name="Flow")

	events = gql('{ auditEvents(first: 5, action: "workflow.create") { action objectRepr } }').ok()
	null_page = gql('{ auditEvents(first: null, action: "workflow.create") { action } }').ok()

	assert events["auditEvents"] == [{"action": "workflow.create", "objectRepr": "Flow"}]
	assert null_page["auditEvents"] == [{"action": "workflow.create"}]


# --- pagination ----------------------------------------------------------------------------------


def test_pages_follow_cursors_without_gaps_or_repeats(
	gql: Gql, tenant: Tenant, owner: User, flows: dict[str, Workflow]
) -> None:
	for _ in range(5):
		run_start(actor=owner, workflow=flows["waits"])
	query = (
		"query($after: String) { runs(first: 2, after: $after) {"
		" edges { cursor node { id } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }"
	)

	seen: list[str] = []
	after = None
	pages = []
	while True:
		page = gql(query, {"after": after}).ok()["runs"]
		pages.append(page)
		seen += [edge["node"]["id"] for edge in page["edges"]]
		if not page["pageInfo"]["hasNextPage"]:
			break
		after = page["pageInfo"]["endCursor"]

	expected = [
		str(pk)
		for pk in Run.objects.for_tenant(tenant).order_by("-created_at", "-id").values_list("pk", flat=True)
	]
	assert seen == expected
	assert [len(p["edges"]) for p in pages] == [2, 2, 1]
	assert pages[0]["pageInfo"]["hasPreviousPage"] is False
	assert pages[1]["pageInfo"]["hasPreviousPage"] is True
	assert pages[0]["pageInfo"]["startCursor"] == pages[0]["edges"][0]["cursor"]
	assert pages[0]["pageInfo"]["endCursor"] == pages[0]["edges"][-1]["cursor"]


def test_a_cursor_stays_right_when_rows_are_added_meanwhile(
	gql: Gql, owner: User, flows: dict[str, Workflow]
) -> None:
	for _ in range(3):
		run_start(actor=owner, workflow=flows["waits"])
	query = "query($after: String) { runs(first: 2, after: $after, ordering: CREATED_AT) { edges { node { id } } pageInfo { endCursor } } }"
	first = gql(query).ok()["runs"]

	run_start(actor=owner, workflow=flows["waits"])
	second = gql(query, {"after": first["pageInfo"]["endCursor"]}).ok()["runs"]

	first_ids = [e["node"]["id"] for e in first["edges"]]
	second_ids = [e["node"]["id"] for e in second["edges"]]
	assert not set(first_ids) & set(second_ids)
	assert len(second_ids) == 2


def test_an_empty_list_has_no_cursors(gql: Gql) -> None:
	page = gql("{ runs { edges { cursor } pageInfo { hasNextPage startCursor endCursor } } }").ok()["runs"]

	assert page == {"edges": [], "pageInfo": {"hasNextPage": False, "startCursor": None, "endCursor": None}}


def test_every_list_pages_with_its_own_cursors(gql: Gql, tenant: Tenant, owner: User) -> None:
	for n in range(3):
		workflow_create(actor=owner, tenant=tenant, name=f"Flow {n}", tags=["t"])
	WorkflowTemplate.objects.create(
		tenant=tenant, slug="t1", name="T1", category="c", industry="i", definition={}
	)
	WorkflowTemplate.objects.create(
		tenant=tenant, slug="t2", name="T2", category="c", industry="i", definition={}
	)

	for field, arguments in (
		("workflows", "ordering: NAME"),
		("workflows", ""),
		("templates", 'category: "c"'),
	):
		query = f"query($after: String) {{ {field}(first: 1, after: $after{', ' + arguments if arguments else ''}) {{ edges {{ node {{ id }} }} pageInfo {{ endCursor hasNextPage }} }} }}"
		first = gql(query).ok()[field]
		second = gql(query, {"after": first["pageInfo"]["endCursor"]}).ok()[field]
		assert first["edges"] != second["edges"], field
		assert first["pageInfo"]["hasNextPage"] is True


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
	("variables", "pointer", "says"),
	[
		({"f": 0}, "/first", "from 1 to 100"),
		({"f": 101}, "/first", "from 1 to 100"),
		({"after": "bm9wZQ"}, "/after", "cursor"),
		({"after": "!!!"}, "/after", "cursor"),
		({"w": "orders"}, "/workflow", "UUID"),
		({"v": 0}, "/version", "greater than or equal to 1"),
		({"t": "x" * 51}, "/tag", "50 characters"),
	],
)
def test_bad_list_arguments_are_clear_validation_errors(
	gql: Gql, variables: dict[str, Any], pointer: str, says: str
) -> None:
	reply = gql(
		"query($f: Int, $after: String, $w: ID, $v: Int, $t: String) {"
		" runs(first: $f, after: $after, workflow: $w, version: $v, tag: $t) { edges { node { id } } } }",
		{"f": 20, **variables},
	)

	assert reply.pointers() == {pointer}
	assert says in reply.error["extensions"]["errors"][0]["message"]
	assert reply.data == {"runs": None} or reply.data is None


def test_a_cursor_of_another_list_or_ordering_is_refused(
	gql: Gql, tenant: Tenant, owner: User, flows: dict[str, Workflow]
) -> None:
	run_start(actor=owner, workflow=flows["waits"])
	run_start(actor=owner, workflow=flows["waits"])
	cursor = gql("{ runs(first: 1) { pageInfo { endCursor } } }").ok()["runs"]["pageInfo"]["endCursor"]

	other_ordering = gql(
		"query($c: String) { runs(after: $c, ordering: PRIORITY) { edges { cursor } } }", {"c": cursor}
	)
	other_list = gql("query($c: String) { workflows(after: $c) { edges { cursor } } }", {"c": cursor})

	assert other_ordering.pointers() == {"/after"}
	assert other_list.pointers() == {"/after"}


def test_enum_and_scalar_mistakes_are_refused_before_running(gql: Gql) -> None:
	bad_status = gql("{ runs(status: DONE) { edges { cursor } } }")
	bad_time = gql('{ runs(createdAfter: "yesterday") { edges { cursor } } }')
	unknown_field = gql("{ runs { edges { node { colour } } } }")

	assert bad_status.status == 400
	assert bad_status.codes == ["GRAPHQL_VALIDATION_FAILED"]
	assert "DONE" in bad_status.error["message"]
	assert bad_time.codes == ["GRAPHQL_VALIDATION_FAILED"]
	assert "yesterday" in bad_time.error["message"]
	assert "colour" in unknown_field.error["message"]


@pytest.mark.parametrize("field", ["run", "step", "approval"])
def test_a_malformed_id_says_what_an_id_is(gql: Gql, field: str) -> None:
	reply = gql(f'{{ {field}(id: "nope") {{ id }} }}')

	assert reply.pointers() == {"/id"}
	assert "is not a" in reply.error["message"] or "invalid" in reply.error["message"]
	assert reply.data == {field: None}


def test_a_bad_actor_id_in_the_audit_log(gql: Gql) -> None:
	reply = gql('{ auditLog(actorId: "me") { edges { cursor } } }')

	assert reply.pointers() == {"/actorId"}


def test_a_missing_workflow_or_template_is_not_found(gql: Gql) -> None:
	workflow = gql('{ workflow(id: "nope") { id } }')
	template = gql('{ template(id: "nope") { id } }')
	run = gql('{ run(id: "0190d1a2-7c3e-7b6f-9a51-2f0c4e8b1d23") { id } }')

	assert workflow.codes == template.codes == run.codes == ["NOT_FOUND"]
	assert workflow.data == {"workflow": None}


def test_an_archived_workflows_runs_still_read(gql: Gql, flows: dict[str, Workflow], owner: User) -> None:
	run = start(gql, flows["waits"])
	workflow_archive(actor=owner, workflow=flows["waits"])

	found = gql('{ workflow(id: "waits") { isArchived runs { edges { node { id status } } } } }').ok()[
		"workflow"
	]

	assert found["isArchived"] is True
	assert [e["node"] for e in found["runs"]["edges"]] == [
		{"id": run["id"], "status": RunStatus.WAITING.name}
	]


def test_retried_run_steps_from_a_list(
	gql: Gql, flows: dict[str, Workflow], owner: User, settle: Callable[..., Any]
) -> None:
	run = settle(run_start, actor=owner, workflow=flows["fails"])
	settle(run_retry, actor=owner, run=run)

	nodes = gql("{ runs { edges { node { steps { key attemptCount } } } } }").ok()["runs"]["edges"]

	assert nodes[0]["node"]["steps"] == [
		{"key": "root:start", "attemptCount": 1},
		{"key": "root:boom", "attemptCount": 2},
	]


def test_nested_runs_page_with_their_own_cursor(
	gql: Gql, flows: dict[str, Workflow], owner: User, settle: Callable[..., Any]
) -> None:
	for _ in range(3):
		settle(run_start, actor=owner, workflow=flows["waits"])
	query = 'query($after: String) { workflow(id: "waits") { runs(first: 2, after: $after) { edges { node { id } } pageInfo { endCursor hasNextPage } } } }'

	first = gql(query).ok()["workflow"]["runs"]
	second = gql(query, {"after": first["pageInfo"]["endCursor"]}).ok()["workflow"]["runs"]

	assert (len(first["edges"]), first["pageInfo"]["hasNextPage"]) == (2, True)
	assert (len(second["edges"]), second["pageInfo"]["hasNextPage"]) == (1, False)
	assert not {e["node"]["id"] for e in first["edges"]} & {e["node"]["id"] for e in second["edges"]}


def test_a_bad_nested_argument_is_an_error_on_every_parent(gql: Gql, flows: dict[str, Workflow]) -> None:
	reply = gql(
		'{ workflows(first: 2, ordering: NAME) { edges { node { slug runs(tag: "'
		+ "x" * 51
		+ '") { edges { cursor } } } } } }'
	)

	assert reply.codes == ["VALIDATION", "VALIDATION"]
	assert [e["path"] for e in reply.errors] == [
		["workflows", "edges", 0, "node", "runs"],
		["workflows", "edges", 1, "node", "runs"],
	]
	assert {e["extensions"]["errors"][0]["pointer"] for e in reply.errors} == {"/tag"}


def test_runs_by_tag_page_through_every_run_in_order(gql: Gql, flows: dict[str, Workflow]) -> None:
	tagged = [start(gql, flows["waits"], tags=["batch"])["id"] for _ in range(5)]
	start(gql, flows["waits"], tags=["other"])
	query = (
		'query($after: String, $o: RunOrdering) { runs(first: 2, tag: "batch", after: $after, ordering: $o)'
		" { edges { node { id } } pageInfo { hasNextPage endCursor } } }"
	)

	def every(ordering: str) -> list[str]:
		seen: list[str] = []
		after = None
		while True:
			page = gql(query, {"after": after, "o": ordering}).ok()["runs"]
			seen += [edge["node"]["id"] for edge in page["edges"]]
			if not page["pageInfo"]["hasNextPage"]:
				return seen
			after = page["pageInfo"]["endCursor"]

	assert every("CREATED_AT_DESC") == tagged[::-1]
	assert every("CREATED_AT") == tagged
