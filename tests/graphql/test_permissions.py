"""Who may do what over GraphQL: every query and mutation for every role.

The same services and selectors as REST decide, so the matrix is REST's: viewers read,
editors build and publish workflows and start runs, operators start and operate runs, decide
approvals and publish events, admins and owners do everything (the audit log is theirs alone).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.graphql.conftest import Gql
from workflows.engine.status import RunStatus
from workflows.models import Approval, AuditEvent, Run, StepRun, Tenant, User, Workflow, WorkflowTemplate
from workflows.services.definitions import workflow_create
from workflows.services.runs import run_pause, run_start

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager")]

ROLES = ("viewer", "editor", "operator", "admin", "owner")
EVERYONE = frozenset(ROLES)
EDITORS = frozenset({"editor", "admin", "owner"})
STARTERS = frozenset({"editor", "operator", "admin", "owner"})
OPERATORS = frozenset({"operator", "admin", "owner"})
ADMINS = frozenset({"admin", "owner"})


@dataclass
class World:
	"""One of each thing an operation can name, in the tenant every role belongs to."""

	flows: dict[str, Workflow]
	waiting: Run
	paused: Run
	failed: Run
	approval: Approval
	step: StepRun
	template: WorkflowTemplate
	draft: Workflow


@pytest.fixture
def world(flows: dict[str, Workflow], owner: User, tenant: Tenant, settle: Callable[..., Any]) -> World:
	waiting = settle(run_start, actor=owner, workflow=flows["waits"])
	paused = settle(run_start, actor=owner, workflow=flows["waits"])
	settle(run_pause, actor=owner, run=paused)
	failed = settle(run_start, actor=owner, workflow=flows["fails"])
	asking = settle(run_start, actor=owner, workflow=flows["approval"])
	template = WorkflowTemplate.objects.create(
		slug="starter",
		name="Starter",
		category="Ops",
		industry="Any",
		definition={"schema_version": "1.0", "nodes": [], "edges": []},
	)
	return World(
		flows=flows,
		waiting=waiting,
		paused=paused,
		failed=failed,
		approval=Approval.objects.for_tenant(tenant).get(run=asking),
		step=StepRun.objects.for_tenant(tenant).filter(run=failed).order_by("created_at")[0],
		template=template,
		draft=workflow_create(actor=owner, tenant=tenant, name="Unpublished"),
	)


Operation = Callable[[World], tuple[str, dict[str, Any]]]

QUERIES: dict[str, tuple[Operation, frozenset[str]]] = {
	"viewer": (lambda w: ("{ viewer { role } }", {}), EVERYONE),
	"members": (lambda w: ("{ members { username } }", {}), EVERYONE),
	"workflows": (
		lambda w: ("{ workflows { edges { node { slug versions { edges { cursor } } } } } }", {}),
		EVERYONE,
	),
	"workflow": (lambda w: ('{ workflow(id: "orders") { runs { edges { cursor } } } }', {}), EVERYONE),
	"workflowVersion": (
		lambda w: ('{ workflowVersion(workflowId: "orders", number: 1) { number } }', {}),
		EVERYONE,
	),
	"runs": (lambda w: ("{ runs { edges { node { steps { key } events { seq } } } } }", {}), EVERYONE),
	"run": (lambda w: ("query($id: ID!) { run(id: $id) { status } }", {"id": str(w.waiting.pk)}), EVERYONE),
	"step": (lambda w: ("query($id: ID!) { step(id: $id) { key } }", {"id": str(w.step.pk)}), EVERYONE),
	"templates": (lambda w: ("{ templates { edges { cursor } } }", {}), EVERYONE),
	"template": (lambda w: ('{ template(id: "starter") { slug } }', {}), EVERYONE),
	"approval": (
		lambda w: ("query($id: ID!) { approval(id: $id) { status } }", {"id": str(w.approval.pk)}),
		EVERYONE,
	),
	"approvals": (lambda w: ("{ approvals { edges { node { id } } } }", {}), OPERATORS),
	"auditLog": (lambda w: ("{ auditLog { edges { node { action } } } }", {}), ADMINS),
}


def _run_action(verb: str, pick: Callable[[World], Run]) -> Operation:
	return lambda w: (f"mutation($id: ID!) {{ {verb}(id: $id) {{ run {{ id }} }} }}", {"id": str(pick(w).pk)})


def _decide(verb: str) -> Operation:
	return lambda w: (
		f"mutation($id: ID!) {{ {verb}(id: $id, data: {{budget: 1}}) {{ approval {{ status }} }} }}",
		{"id": str(w.approval.pk)},
	)


MUTATIONS: dict[str, tuple[Operation, frozenset[str]]] = {
	"workflowCreate": (
		lambda w: ('mutation { workflowCreate(name: "New") { workflow { id } } }', {}),
		EDITORS,
	),
	"workflowUpdate": (
		lambda w: ('mutation { workflowUpdate(id: "orders", name: "Renamed") { workflow { name } } }', {}),
		EDITORS,
	),
	"workflowPublish": (
		lambda w: ('mutation { workflowPublish(id: "unpublished", changelog: "first") { created } }', {}),
		EDITORS,
	),
	"templateInstantiate": (
		lambda w: ('mutation { templateInstantiate(id: "starter") { workflow { slug } } }', {}),
		EDITORS,
	),
	"runStart": (
		lambda w: ('mutation { runStart(workflowId: "orders", input: {order: "A"}) { run { id } } }', {}),
		STARTERS,
	),
	"runCancel": (_run_action("runCancel", lambda w: w.waiting), OPERATORS),
	"runPause": (_run_action("runPause", lambda w: w.waiting), OPERATORS),
	"runResume": (_run_action("runResume", lambda w: w.paused), OPERATORS),
	"runRetry": (_run_action("runRetry", lambda w: w.failed), OPERATORS),
	"runRerun": (_run_action("runRerun", lambda w: w.failed), OPERATORS),
	"approvalApprove": (_decide("approvalApprove"), OPERATORS),
	"approvalReject": (_decide("approvalReject"), OPERATORS),
	"eventPublish": (lambda w: ('mutation { eventPublish(type: "order.paid") { eventId } }', {}), OPERATORS),
}


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_query_permissions(gql: Gql, world: World, name: str) -> None:
	operation, allowed = QUERIES[name]
	query, variables = operation(world)

	replies = {role: gql(query, variables, role=role) for role in ROLES}

	for role, reply in replies.items():
		if role in allowed:
			assert reply.ok()[name] is not None, role
		else:
			assert reply.codes == ["PERMISSION_DENIED"], (role, reply.errors)
			assert reply.error["message"].startswith("Your role does not allow")
			assert reply.data is None or reply.data.get(name) is None


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_mutation_permissions(gql: Gql, world: World, tenant: Tenant, name: str, role: str) -> None:
	operation, allowed = MUTATIONS[name]
	query, variables = operation(world)
	audited = AuditEvent.objects.for_tenant(tenant).count()

	reply = gql(query, variables, role=role)

	if role in allowed:
		assert reply.ok()[name] is not None
		assert AuditEvent.objects.for_tenant(tenant).count() > audited
	else:
		assert reply.codes == ["PERMISSION_DENIED"], reply.errors
		assert reply.data == {name: None}
		assert AuditEvent.objects.for_tenant(tenant).count() == audited


def test_a_refused_operator_leaves_the_run_as_it_was(gql: Gql, world: World) -> None:
	reply = gql(
		"mutation($id: ID!) { runCancel(id: $id) { run { id } } }",
		{"id": str(world.waiting.pk)},
		role="editor",
	)

	world.waiting.refresh_from_db()
	assert reply.error["extensions"] == {"code": "PERMISSION_DENIED", "permission": "run.operate"}
	assert world.waiting.status == RunStatus.WAITING
