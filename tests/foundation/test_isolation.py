"""Tenant isolation across every public layer: services, REST, GraphQL, WebSocket, admin.

A member of tenant A must never see or change tenant B's rows, and must get the same
404 for "missing" and "someone else's". New routes and bypasses are caught here: the
walkers below fail when a route or a use of the unscoped escape hatch is not accounted for.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from config.env import BASE_DIR
from workflows.context import tenant_scope
from workflows.models import (
	ApiToken,
	Approval,
	AuditEvent,
	Membership,
	Run,
	StepRun,
	Tenant,
	Trigger,
	User,
	WebhookDelivery,
	WebhookSubscription,
	Workflow,
	WorkflowTemplate,
)
from workflows.roles import Role
from workflows.services.definitions import template_publish, workflow_create, workflow_publish
from workflows.services.runs import run_start
from workflows.services.tokens import api_token_create
from workflows.services.triggers import trigger_create
from workflows.services.webhooks import webhook_create, webhook_ping

pytestmark = pytest.mark.django_db

# How to find one of tenant B's objects for each URL parameter of the REST API. A new
# route with a parameter missing here fails test_every_rest_route_is_walked.
OBJECT_FOR_PARAM: dict[str, Callable[[Tenant], Any]] = {
	"token_id": lambda t: ApiToken.objects.for_tenant(t).first(),
	"workflow_id": lambda t: Workflow.objects.for_tenant(t).first(),
	"number": lambda t: SimpleNamespace(pk=1),  # version 1 of that tenant's workflow
	"template_id": lambda t: WorkflowTemplate.objects.filter(tenant=t).first(),
	"run_id": lambda t: Run.objects.for_tenant(t).first(),
	"step_id": lambda t: StepRun.objects.for_tenant(t).first(),
	"approval_id": lambda t: Approval.objects.for_tenant(t).first(),
	"trigger_id": lambda t: Trigger.objects.for_tenant(t).first(),
	"membership_id": lambda t: Membership.objects.for_tenant(t).first(),
	"webhook_id": lambda t: WebhookSubscription.objects.for_tenant(t).first(),
	"delivery_id": lambda t: WebhookDelivery.objects.for_tenant(t).first(),
}

# Where the unscoped escape hatches may appear, and why. Anything else is a leak waiting to happen.
ALLOWED_BYPASSES: dict[str, str] = {
	"workflows/context.py": "defines the bypass",
	"workflows/models/base.py": "implements scoping",
	"workflows/models/audit.py": "implements scoping for audit rows",
	"workflows/middleware.py": "binds the request's tenant; the admin bypass for superusers",
	"workflows/http.py": "binds an API token's tenant to its request",
	"workflows/services/tokens.py": "finds a token by its hash before any tenant is known",
	"workflows/services/tenancy.py": "restore must see soft-deleted rows",
	"workflows/engine/runtime.py": "the engine advances runs of every tenant, found by id",
	"workflows/engine/starting.py": "admission counts a tenant's runs by id",
	"workflows/engine/worker.py": "workers claim steps by id",
	"workflows/tasks.py": "sweepers and the reaper serve every tenant",
	"workflows/services/secrets.py": "the engine reads a run's secrets by its tenant id",
	"workflows/webhook_tasks.py": "webhook deliveries are claimed by id; their sweeper serves every tenant",
}
_BYPASS = re.compile(r"dangerously_unscoped\(|\._unfiltered\(|_tenant\.set\(")


@pytest.fixture
def two_tenants(tenant_factory: Callable[..., Tenant], member_factory: Callable[..., User]) -> dict[str, Any]:
	a, b = tenant_factory(name="Tenant A"), tenant_factory(name="Tenant B")
	owner_a = Membership.objects.for_tenant(a).get().user
	owner_b = Membership.objects.for_tenant(b).get().user
	with tenant_scope(b):
		api_token_create(actor=owner_b, tenant=b, name="b-secret-token-name")
		# Tenant B owns one of everything a route can name: a published workflow, a template,
		# a run waiting on an approval (with its steps), and a trigger.
		doc = {
			"schema_version": "1.0",
			"nodes": [
				{"id": "start", "type": "start"},
				{"id": "ask", "type": "approval", "config": {"role": "admin"}},
				{"id": "end", "type": "end"},
			],
			"edges": [
				{"source": "start", "target": "ask"},
				{"source": "ask", "target": "end", "source_handle": "approved"},
			],
		}
		workflow = workflow_create(actor=owner_b, tenant=b, name="B secret flow", definition=doc)
		workflow_publish(actor=owner_b, workflow=workflow)
		template_publish(actor=owner_b, workflow=workflow, category="Secret", industry="Secret")
		run_start(actor=owner_b, workflow=workflow)
		trigger_create(
			actor=owner_b,
			tenant=b,
			workflow=workflow,
			name="b-cron",
			kind="cron",
			cron_expression="0 3 * * *",
		)
		subscription = webhook_create(
			actor=owner_b, tenant=b, url="https://b.example.com/hook", event_types=["*"]
		).subscription
		webhook_ping(actor=owner_b, subscription=subscription)
	return {"a": a, "b": b, "owner_a": owner_a, "owner_b": owner_b}


def _api_routes() -> list[tuple[str, URLPattern]]:
	routes: list[tuple[str, URLPattern]] = []

	def walk(patterns: list[Any], prefix: str) -> None:
		for p in patterns:
			if isinstance(p, URLResolver):
				walk(p.url_patterns, prefix + str(p.pattern))
			elif isinstance(p, URLPattern):
				routes.append((prefix + str(p.pattern), p))

	walk(get_resolver().url_patterns, "/")
	return [
		(r, p)
		for r, p in routes
		if r.startswith("/api/v1/") and "schema" not in r and "docs" not in r and "redoc" not in r
	]


def _fill(route: str, tenant: Tenant) -> str:
	def value(match: re.Match[str]) -> str:
		obj = OBJECT_FOR_PARAM[match.group(2)](tenant)
		assert obj is not None, f"tenant has no object for {match.group(2)}"
		return str(obj.pk)

	return re.sub(r"<(?:(\w+):)?(\w+)>", value, route)


def test_every_rest_route_is_walked() -> None:
	params = {m.group(2) for route, _ in _api_routes() for m in re.finditer(r"<(?:(\w+):)?(\w+)>", route)}

	assert params <= OBJECT_FOR_PARAM.keys(), (
		f"add these URL parameters to OBJECT_FOR_PARAM: {params - OBJECT_FOR_PARAM.keys()}"
	)


def test_rest_never_shows_or_touches_another_tenants_rows(
	two_tenants: dict[str, Any], token_client: Callable[[User, Tenant], APIClient]
) -> None:
	a, b = two_tenants["a"], two_tenants["b"]
	client = token_client(two_tenants["owner_a"], a)
	b_ids = {str(b.pk), str(two_tenants["owner_b"].pk)}
	b_ids |= {str(pk) for pk in ApiToken.objects.for_tenant(b).values_list("pk", flat=True)}
	b_ids |= {str(pk) for pk in Membership.objects.for_tenant(b).values_list("pk", flat=True)}

	for route, _ in _api_routes():
		if "<" in route:
			url = _fill(route, b)
			for method in ("get", "put", "patch", "delete"):
				response = getattr(client, method)(url, {}, format="json")
				assert response.status_code in (404, 405), f"{method.upper()} {url} -> {response.status_code}"
		elif "auth/token" not in route:
			response = client.get(route)
			assert response.status_code < 500, route
			body = response.content.decode()
			leaked = [i for i in b_ids if i in body]
			assert not leaked, f"GET {route} shows tenant B ids {leaked}"
			assert "b-secret-token-name" not in body


def test_graphql_shows_only_the_callers_tenant(
	two_tenants: dict[str, Any], token_client: Callable[[User, Tenant], APIClient]
) -> None:
	client = token_client(two_tenants["owner_a"], two_tenants["a"])

	response = client.post(
		"/graphql",
		{"query": "{ viewer { tenant { name } } members { username } auditEvents { objectId } }"},
		format="json",
	)

	data = response.json()["data"]
	assert data["viewer"]["tenant"]["name"] == "Tenant A"
	assert [m["username"] for m in data["members"]] == [two_tenants["owner_a"].username]
	b_object_ids = set(AuditEvent.objects.for_tenant(two_tenants["b"]).values_list("object_id", flat=True))
	assert not b_object_ids & {e["objectId"] for e in data["auditEvents"]}


# --- GraphQL: every field and mutation naming an object, with tenant B's ids -------------------

GraphQLOperation = Callable[[Tenant], tuple[str, dict[str, Any]]]


def _run_mutation(verb: str) -> GraphQLOperation:
	return lambda t: (
		f"mutation($id: ID!) {{ {verb}(id: $id) {{ run {{ id }} }} }}",
		{"id": str(Run.objects.for_tenant(t).get().pk)},
	)


def _approval_mutation(verb: str) -> GraphQLOperation:
	return lambda t: (
		f"mutation($id: ID!) {{ {verb}(id: $id) {{ approval {{ id }} }} }}",
		{"id": str(Approval.objects.for_tenant(t).get().pk)},
	)


# How each GraphQL root field or mutation names one of tenant B's objects. A new one taking an
# ID argument and missing from both maps fails test_every_graphql_id_argument_is_walked.
GRAPHQL_LOOKUPS: dict[str, GraphQLOperation] = {
	"workflow": lambda t: (
		"query($id: ID!) { workflow(id: $id) { id name draft } }",
		{"id": str(Workflow.objects.for_tenant(t).get().pk)},
	),
	"workflowVersion": lambda t: (
		"query($id: ID!) { workflowVersion(workflowId: $id, number: 1) { id definition } }",
		{"id": str(Workflow.objects.for_tenant(t).get().pk)},
	),
	"run": lambda t: (
		"query($id: ID!) { run(id: $id) { id input } }",
		{"id": str(Run.objects.for_tenant(t).get().pk)},
	),
	"step": lambda t: (
		"query($id: ID!) { step(id: $id) { id key } }",
		{"id": str(StepRun.objects.for_tenant(t).order_by("created_at")[0].pk)},
	),
	"approval": lambda t: (
		"query($id: ID!) { approval(id: $id) { id title } }",
		{"id": str(Approval.objects.for_tenant(t).get().pk)},
	),
	"template": lambda t: (
		"query($id: ID!) { template(id: $id) { id definition } }",
		{"id": str(WorkflowTemplate.objects.get(tenant=t).pk)},
	),
	"workflowUpdate": lambda t: (
		'mutation($id: ID!) { workflowUpdate(id: $id, name: "Mine now") { workflow { id } } }',
		{"id": str(Workflow.objects.for_tenant(t).get().pk)},
	),
	"workflowPublish": lambda t: (
		"mutation($id: ID!) { workflowPublish(id: $id) { created } }",
		{"id": str(Workflow.objects.for_tenant(t).get().pk)},
	),
	"templateInstantiate": lambda t: (
		"mutation($id: ID!) { templateInstantiate(id: $id) { workflow { id draft } } }",
		{"id": str(WorkflowTemplate.objects.get(tenant=t).pk)},
	),
	"runStart": lambda t: (
		"mutation($id: ID!) { runStart(workflowId: $id) { run { id } } }",
		{"id": str(Workflow.objects.for_tenant(t).get().pk)},
	),
	**{verb: _run_mutation(verb) for verb in ("runCancel", "runPause", "runResume", "runRetry", "runRerun")},
	**{verb: _approval_mutation(verb) for verb in ("approvalApprove", "approvalReject")},
}
# Lists filtered by an id: another tenant's id finds nothing (as REST's filters).
GRAPHQL_ID_FILTERS: dict[str, GraphQLOperation] = {
	"runs": lambda t: (
		"query($id: ID!) { runs(workflow: $id) { edges { node { id } } } }",
		{"id": str(Workflow.objects.for_tenant(t).get().pk)},
	),
	"auditLog": lambda t: (
		"query($id: ID!) { auditLog(actorId: $id) { edges { node { id } } } }",
		{"id": str(Membership.objects.for_tenant(t).get().user_id)},
	),
}


def test_every_graphql_id_argument_is_walked() -> None:
	from graphql import get_named_type

	from config.schema import schema

	graphql_schema = schema.graphql_schema
	taking_ids = {
		name
		for root in (graphql_schema.query_type, graphql_schema.mutation_type)
		if root is not None
		for name, field in root.fields.items()
		if any(get_named_type(argument.type).name == "ID" for argument in field.args.values())
	}

	missing = taking_ids - GRAPHQL_LOOKUPS.keys() - GRAPHQL_ID_FILTERS.keys()
	assert not missing, f"add these GraphQL fields to GRAPHQL_LOOKUPS or GRAPHQL_ID_FILTERS: {missing}"


def test_graphql_answers_another_tenants_ids_like_missing_ones(
	two_tenants: dict[str, Any], token_client: Callable[[User, Tenant], APIClient]
) -> None:
	a, b = two_tenants["a"], two_tenants["b"]
	client = token_client(two_tenants["owner_a"], a)
	b_audit = AuditEvent.objects.for_tenant(b).count()
	b_runs = {run.pk: run.status for run in Run.objects.for_tenant(b)}

	for name, operation in GRAPHQL_LOOKUPS.items():
		query, variables = operation(b)
		response = client.post("/graphql", {"query": query, "variables": variables}, format="json")
		body = response.json()

		assert response.status_code == 200, (name, body)
		assert [e["extensions"]["code"] for e in body["errors"]] == ["NOT_FOUND"], (name, body)
		assert body["errors"][0]["message"] == "Not found.", name
		assert body["data"] == {name: None}, name
		assert "B secret flow" not in response.content.decode(), name

	assert AuditEvent.objects.for_tenant(b).count() == b_audit
	assert {run.pk: run.status for run in Run.objects.for_tenant(b)} == b_runs
	assert Workflow.objects.for_tenant(a).count() == 0


def test_graphql_finds_another_tenants_objects_by_slug_no_better(
	two_tenants: dict[str, Any], token_client: Callable[[User, Tenant], APIClient]
) -> None:
	client = token_client(two_tenants["owner_a"], two_tenants["a"])
	slug = Workflow.objects.for_tenant(two_tenants["b"]).get().slug

	for query in (
		"query($s: ID!) { workflow(id: $s) { id } }",
		"query($s: ID!) { template(id: $s) { id } }",
		'query($s: ID!) { runs(workflow: "00000000-0000-0000-0000-000000000000") { edges { cursor } } workflow(id: $s) { id } }',
	):
		body = client.post("/graphql", {"query": query, "variables": {"s": slug}}, format="json").json()
		assert [e["extensions"]["code"] for e in body["errors"]] == ["NOT_FOUND"], body


def test_graphql_lists_and_id_filters_show_only_the_callers_tenant(
	two_tenants: dict[str, Any], token_client: Callable[[User, Tenant], APIClient]
) -> None:
	client = token_client(two_tenants["owner_a"], two_tenants["a"])
	lists = (
		"{ workflows(includeArchived: true) { edges { node { id } } } runs { edges { node { id } } }"
		" approvals { edges { node { id } } } templates(first: 100) { edges { node { id slug } } }"
		" auditLog(first: 100) { edges { node { objectId objectRepr } } } }"
	)

	response = client.post("/graphql", {"query": lists}, format="json")
	filtered = {
		name: client.post(
			"/graphql", dict(zip(("query", "variables"), op(two_tenants["b"]), strict=True)), format="json"
		).json()
		for name, op in GRAPHQL_ID_FILTERS.items()
	}

	data = response.json()["data"]
	assert data["workflows"]["edges"] == data["runs"]["edges"] == data["approvals"]["edges"] == []
	assert "b-secret-flow" not in {edge["node"]["slug"] for edge in data["templates"]["edges"]}
	assert "B secret flow" not in response.content.decode()
	for name, body in filtered.items():
		assert "errors" not in body, body
		assert body["data"][name]["edges"] == [], name


def test_admin_shows_tenant_admins_only_their_tenant(two_tenants: dict[str, Any], client: Client) -> None:
	owner_a = two_tenants["owner_a"]
	owner_a.is_staff = True
	owner_a.save()
	client.force_login(owner_a)

	memberships = client.get("/admin/workflows/membership/")
	foreign = Membership.objects.for_tenant(two_tenants["b"]).get()
	foreign_page = client.get(f"/admin/workflows/membership/{foreign.pk}/change/")
	tenants = client.get("/admin/workflows/tenant/").content.decode()

	assert memberships.status_code == 200
	assert owner_a.username in memberships.content.decode()
	assert two_tenants["owner_b"].username not in memberships.content.decode()
	assert foreign_page.status_code == 302  # the admin's "does not exist" redirect
	assert "Tenant A" in tenants
	assert "Tenant B" not in tenants


def test_no_code_reaches_past_tenant_scope_outside_the_allowlist() -> None:
	offenders: list[str] = []
	for app in ("config", "workflows", "connectors", "designer", "analytics"):
		for path in Path(BASE_DIR, app).rglob("*.py"):
			relative = path.relative_to(BASE_DIR).as_posix()
			if "/migrations/" in relative or relative in ALLOWED_BYPASSES:
				continue
			for number, line in enumerate(path.read_text().splitlines(), 1):
				if _BYPASS.search(line):
					offenders.append(f"{relative}:{number}: {line.strip()}")

	assert not offenders, "unscoped access outside ALLOWED_BYPASSES:\n" + "\n".join(offenders)


def test_a_token_is_bound_to_its_tenant(
	two_tenants: dict[str, Any],
	user_factory: Callable[..., User],
	token_client: Callable[[User, Tenant], APIClient],
) -> None:
	both = user_factory()
	Membership.objects.for_tenant(two_tenants["a"]).create(
		tenant=two_tenants["a"], user=both, role=Role.ADMIN
	)
	Membership.objects.for_tenant(two_tenants["b"]).create(
		tenant=two_tenants["b"], user=both, role=Role.ADMIN
	)

	me = token_client(both, two_tenants["a"]).get("/api/v1/me/").json()
	members = token_client(both, two_tenants["a"]).get("/api/v1/members/").json()

	assert me["tenant"]["name"] == "Tenant A"
	assert two_tenants["owner_b"].username not in json.dumps(members)
