"""REST API of workflows, versions, draft history, import/export and templates."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from rest_framework.test import APIClient

from tests.api.conftest import linear
from workflows.context import tenant_scope
from workflows.models import Tenant, User, Workflow
from workflows.roles import Perm, Role, role_allows
from workflows.services.definitions import (
	template_publish,
	workflow_archive,
	workflow_publish,
	workflow_update,
)

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"
API = "/api/v1"


def problem(response: Any, status: int) -> dict[str, Any]:
	"""Assert ``response`` is a problem-details error with ``status`` and return its body."""
	assert response.status_code == status, response.content
	assert response["Content-Type"] == PROBLEM
	body = json.loads(response.content)
	assert body["status"] == status
	return body


def pointers(body: dict[str, Any]) -> set[str]:
	return {e["pointer"] for e in body.get("errors", [])}


# --- List and create --------------------------------------------------------------------


def test_list_pages_filters_and_orders(
	api: APIClient, owner: User, workflow_factory: Callable[..., Workflow]
) -> None:
	a = workflow_factory(name="Beta", tags=["billing"])
	b = workflow_factory(name="Alpha", description="nightly sync")
	archived = workflow_factory(name="Gamma")
	workflow_archive(actor=owner, workflow=archived)

	default = api.get(f"{API}/workflows/").json()
	by_name = api.get(f"{API}/workflows/", {"ordering": "name", "include_archived": "true"}).json()
	tagged = api.get(f"{API}/workflows/", {"tag": "billing"}).json()
	searched = api.get(f"{API}/workflows/", {"search": "nightly"}).json()
	first_page = api.get(f"{API}/workflows/", {"limit": 1}).json()

	assert {w["slug"] for w in default["results"]} == {a.slug, b.slug}
	assert [w["name"] for w in by_name["results"]] == ["Alpha", "Beta", "Gamma"]
	assert [w["slug"] for w in tagged["results"]] == [a.slug]
	assert [w["slug"] for w in searched["results"]] == [b.slug]
	assert "draft" not in default["results"][0]
	assert len(first_page["results"]) == 1
	assert first_page["next"]
	assert len(api.get(first_page["next"]).json()["results"]) == 1


def test_list_refuses_bad_filters(api: APIClient) -> None:
	body = problem(api.get(f"{API}/workflows/", {"ordering": "size", "colour": "red"}), 400)

	assert pointers(body) == {"/ordering", "/colour"}


def test_list_never_shows_another_tenants_workflows(api: APIClient, foreign: dict[str, Any]) -> None:
	body = api.get(f"{API}/workflows/").content.decode()

	assert str(foreign["workflow"].pk) not in body


def test_create_returns_201_with_draft_and_etag(api: APIClient) -> None:
	response = api.post(
		f"{API}/workflows/",
		{"name": "Invoice approval", "tags": ["finance"], "definition": linear()},
		format="json",
	)

	assert response.status_code == 201
	body = response.json()
	assert body["slug"] == "invoice-approval"
	assert body["draft"] == linear()
	assert response["ETag"] == '"1"'


@pytest.mark.parametrize(
	("payload", "expected"),
	[
		({"name": "x", "defintion": {}}, {"/defintion"}),
		({"name": 5, "tags": "etl"}, {"/tags"}),
		({"name": "x", "definition": ["not", "an", "object"]}, {"/definition"}),
		({"name": "x", "slug": "Not A Slug"}, {"/slug"}),
		({}, {"/name"}),
	],
)
def test_create_refuses_bad_input_with_pointers(
	api: APIClient, payload: dict[str, Any], expected: set[str]
) -> None:
	body = problem(api.post(f"{API}/workflows/", payload, format="json"), 400)

	assert expected <= pointers(body)


def test_unknown_fields_name_the_allowed_ones(api: APIClient) -> None:
	body = problem(api.post(f"{API}/workflows/", {"name": "x", "colour": "red"}, format="json"), 400)

	assert "Allowed fields: definition, description, name, slug, tags" in body["errors"][0]["message"]


def test_create_with_a_taken_slug_is_a_conflict(api: APIClient, workflow: Workflow) -> None:
	problem(api.post(f"{API}/workflows/", {"name": "x", "slug": workflow.slug}, format="json"), 409)


def test_unauthenticated_requests_get_a_problem(workflow: Workflow) -> None:
	response = APIClient().get(f"{API}/workflows/")

	assert response.status_code in (401, 403)
	assert response["Content-Type"] == PROBLEM


# --- Detail, update, delete -------------------------------------------------------------


def test_get_by_id_or_slug_with_etag(api: APIClient, workflow: Workflow) -> None:
	by_id = api.get(f"{API}/workflows/{workflow.pk}/")
	by_slug = api.get(f"{API}/workflows/{workflow.slug}/")

	assert by_id.status_code == by_slug.status_code == 200
	assert by_id.json() == by_slug.json()
	assert by_id.json()["draft"] == linear()
	assert by_id["ETag"] == f'"{workflow.draft_revision}"'


def test_unknown_workflow_is_404(api: APIClient) -> None:
	problem(api.get(f"{API}/workflows/no-such-flow/"), 404)


def test_patch_without_if_match_works_and_returns_the_new_etag(api: APIClient, workflow: Workflow) -> None:
	response = api.patch(
		f"{API}/workflows/{workflow.pk}/", {"definition": linear(value=2), "tags": ["x"]}, format="json"
	)

	assert response.status_code == 200
	assert response["ETag"] == '"2"'
	assert response.json()["tags"] == ["x"]


def test_two_writers_with_the_same_etag_the_second_gets_412(
	tenant: Tenant, workflow: Workflow, role_client: Callable[[Role | str], APIClient]
) -> None:
	alice, bob = role_client(Role.EDITOR), role_client(Role.EDITOR)
	url = f"{API}/workflows/{workflow.pk}/"
	etag = alice.get(url)["ETag"]
	assert bob.get(url)["ETag"] == etag

	first = alice.patch(url, {"definition": linear(value="alice")}, format="json", HTTP_IF_MATCH=etag)
	second = bob.patch(url, {"definition": linear(value="bob")}, format="json", HTTP_IF_MATCH=etag)

	assert first.status_code == 200
	assert first["ETag"] != etag
	body = problem(second, 412)
	assert "reload" in body["detail"]
	workflow.refresh_from_db()
	assert workflow.draft == linear(value="alice")


def test_if_match_with_the_current_etag_succeeds(api: APIClient, workflow: Workflow) -> None:
	url = f"{API}/workflows/{workflow.pk}/"
	etag = api.get(url)["ETag"]

	response = api.patch(url, {"name": "Renamed"}, format="json", HTTP_IF_MATCH=f"W/{etag}")

	assert response.status_code == 200
	assert response.json()["name"] == "Renamed"


def test_malformed_if_match_is_400(api: APIClient, workflow: Workflow) -> None:
	body = problem(
		api.patch(f"{API}/workflows/{workflow.pk}/", {"name": "x"}, format="json", HTTP_IF_MATCH="abc"), 400
	)

	assert pointers(body) == {"/If-Match"}


def test_patch_of_an_archived_workflow_is_409_not_412(api: APIClient, workflow: Workflow) -> None:
	url = f"{API}/workflows/{workflow.pk}/"
	api.post(f"{url}archive/")
	etag = api.get(url)["ETag"]

	problem(api.patch(url, {"name": "x"}, format="json", HTTP_IF_MATCH=etag), 409)


def test_patch_refuses_bad_input(api: APIClient, workflow: Workflow) -> None:
	body = problem(
		api.patch(f"{API}/workflows/{workflow.pk}/", {"name": None, "draft": {}}, format="json"), 400
	)

	assert pointers(body) == {"/name", "/draft"}


def test_delete_soft_deletes(api: APIClient, workflow: Workflow, tenant: Tenant) -> None:
	response = api.delete(f"{API}/workflows/{workflow.pk}/")

	assert response.status_code == 204
	problem(api.get(f"{API}/workflows/{workflow.pk}/"), 404)
	with tenant_scope(tenant):
		assert Workflow.objects.with_deleted().get(pk=workflow.pk).deleted_at is not None


# --- Validate, publish, archive, rollback -----------------------------------------------


def test_validate_the_draft_or_a_sent_definition(api: APIClient, workflow: Workflow) -> None:
	url = f"{API}/workflows/{workflow.pk}/validate/"

	draft = api.post(url, {}, format="json")
	broken = api.post(url, {"definition": {"schema_version": "1.0", "nodes": [], "edges": []}}, format="json")

	assert draft.json() == {"ok": True, "errors": []}
	body = broken.json()
	assert body["ok"] is False
	assert body["errors"]
	assert set(body["errors"][0]) == {"pointer", "code", "message", "hint"}


def test_validate_refuses_unknown_fields(api: APIClient, workflow: Workflow) -> None:
	problem(api.post(f"{API}/workflows/{workflow.pk}/validate/", {"draft": {}}, format="json"), 400)


def test_publish_creates_a_version_once(api: APIClient, workflow: Workflow) -> None:
	url = f"{API}/workflows/{workflow.pk}/publish/"

	first = api.post(url, {"changelog": "first"}, format="json")
	again = api.post(url, {}, format="json")

	assert first.status_code == 201
	assert first.json()["number"] == 1
	assert first.json()["definition"] == linear()
	assert again.status_code == 200
	assert again.json()["number"] == 1


def test_publishing_an_invalid_draft_lists_the_problems(
	api: APIClient, workflow_factory: Callable[..., Workflow]
) -> None:
	broken = workflow_factory(name="Broken", definition={"schema_version": "1.0", "nodes": [], "edges": []})

	body = problem(api.post(f"{API}/workflows/{broken.pk}/publish/", {}, format="json"), 400)

	assert all(p.startswith("/definition") for p in pointers(body))


def test_publish_refuses_bad_input(api: APIClient, workflow: Workflow) -> None:
	problem(api.post(f"{API}/workflows/{workflow.pk}/publish/", {"changelog": ["x"]}, format="json"), 400)


def test_archive_and_unarchive(api: APIClient, workflow: Workflow) -> None:
	archived = api.post(f"{API}/workflows/{workflow.pk}/archive/")
	hidden = api.get(f"{API}/workflows/").json()["results"]
	restored = api.post(f"{API}/workflows/{workflow.pk}/unarchive/")

	assert archived.status_code == 200
	assert archived.json()["is_archived"] is True
	assert hidden == []
	assert restored.json()["is_archived"] is False


def test_rollback_to_a_version(api: APIClient, workflow: Workflow, owner: User) -> None:
	workflow_publish(actor=owner, workflow=workflow)
	workflow_update(actor=owner, workflow=workflow, definition=linear(value=9))

	response = api.post(f"{API}/workflows/{workflow.pk}/rollback/", {"version": 1}, format="json")

	assert response.status_code == 200
	assert response.json()["draft"] == linear()
	assert response["ETag"] == '"3"'


@pytest.mark.parametrize(("payload", "status"), [({"version": "one"}, 400), ({}, 400), ({"version": 7}, 404)])
def test_rollback_refuses_bad_input(
	api: APIClient, workflow: Workflow, payload: dict[str, Any], status: int
) -> None:
	problem(api.post(f"{API}/workflows/{workflow.pk}/rollback/", payload, format="json"), status)


# --- Versions, history, diff ------------------------------------------------------------


def test_versions_list_and_detail(api: APIClient, workflow: Workflow, owner: User) -> None:
	workflow_publish(actor=owner, workflow=workflow, changelog="one")
	workflow_update(actor=owner, workflow=workflow, definition=linear(value=2))
	workflow_publish(actor=owner, workflow=workflow, changelog="two")

	listed = api.get(f"{API}/workflows/{workflow.slug}/versions/").json()
	detail = api.get(f"{API}/workflows/{workflow.pk}/versions/2/").json()

	assert [v["number"] for v in listed["results"]] == [2, 1]
	assert "definition" not in listed["results"][0]
	assert detail["definition"] == linear(value=2)
	assert len(detail["checksum"]) == 64


def test_missing_version_is_404(api: APIClient, workflow: Workflow) -> None:
	problem(api.get(f"{API}/workflows/{workflow.pk}/versions/3/"), 404)


def test_history_lists_draft_saves_newest_first(api: APIClient, workflow: Workflow, owner: User) -> None:
	workflow_update(actor=owner, workflow=workflow, definition=linear(value=2))

	entries = api.get(f"{API}/workflows/{workflow.pk}/history/").json()["results"]

	assert [e["reason"] for e in entries] == ["edit", "create"]
	assert [e["revision"] for e in entries] == [2, 1]
	assert entries[0]["user"] == str(owner.pk)
	assert set(entries[0]) == {"id", "date", "user", "reason", "revision"}


def test_diff_between_a_version_and_the_draft(api: APIClient, workflow: Workflow, owner: User) -> None:
	workflow_publish(actor=owner, workflow=workflow)
	workflow_update(actor=owner, workflow=workflow, definition=linear(value=2))

	diff = api.get(f"{API}/workflows/{workflow.pk}/diff/", {"base": "v1", "head": "draft"}).json()
	same = api.get(f"{API}/workflows/{workflow.pk}/diff/", {"base": "v1", "head": "v1"}).json()

	assert diff["is_empty"] is False
	assert [n["id"] for n in diff["nodes"]["changed"]] == ["compute"]
	assert same["is_empty"] is True


@pytest.mark.parametrize("query", [{}, {"base": "yesterday"}])
def test_diff_refuses_bad_references(api: APIClient, workflow: Workflow, query: dict[str, str]) -> None:
	problem(api.get(f"{API}/workflows/{workflow.pk}/diff/", query), 400)


# --- Export and import ------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "media_type"), [("json", "application/json"), ("yaml", "application/yaml")])
def test_export_then_import_round_trip(api: APIClient, workflow: Workflow, fmt: str, media_type: str) -> None:
	exported = api.get(f"{API}/workflows/{workflow.pk}/export/", {"format": fmt})

	assert exported.status_code == 200
	assert exported["Content-Type"].startswith(media_type)
	assert exported["Content-Disposition"] == f'attachment; filename="{workflow.slug}.{fmt}"'
	text = exported.content.decode()
	document = json.loads(text) if fmt == "json" else yaml.safe_load(text)
	assert document["definition"] == linear()

	imported = api.post(
		f"{API}/workflows/import/",
		{"document": text, "format": fmt, "slug": f"copy-{fmt}", "name": "Copy"},
		format="json",
	)

	assert imported.status_code == 201
	assert imported.json()["slug"] == f"copy-{fmt}"
	assert imported.json()["draft"] == workflow.draft
	assert imported.json()["tags"] == workflow.tags


def test_export_a_version(api: APIClient, workflow: Workflow, owner: User) -> None:
	workflow_publish(actor=owner, workflow=workflow)
	workflow_update(actor=owner, workflow=workflow, definition=linear(value=2))

	exported = api.get(f"{API}/workflows/{workflow.pk}/export/", {"version": 1}).json()

	assert exported["definition"] == linear()


@pytest.mark.parametrize(("query", "status"), [({"format": "xml"}, 400), ({"version": 4}, 404)])
def test_export_refuses_bad_input(
	api: APIClient, workflow: Workflow, query: dict[str, Any], status: int
) -> None:
	problem(api.get(f"{API}/workflows/{workflow.pk}/export/", query), status)


@pytest.mark.parametrize(
	("payload", "pointer"),
	[
		({"document": "{not json", "format": "json"}, ""),
		({"document": json.dumps({"format": "other"})}, "/format"),
		({"text": "{}"}, "/text"),
		({"document": "{}", "format": "toml"}, "/format"),
	],
)
def test_import_refuses_bad_documents(api: APIClient, payload: dict[str, Any], pointer: str) -> None:
	body = problem(api.post(f"{API}/workflows/import/", payload, format="json"), 400)

	assert pointer in pointers(body)


def test_import_the_same_slug_twice_is_a_conflict(api: APIClient, workflow: Workflow) -> None:
	text = api.get(f"{API}/workflows/{workflow.pk}/export/").content.decode()

	problem(api.post(f"{API}/workflows/import/", {"document": text}, format="json"), 409)


# --- Templates --------------------------------------------------------------------------


def test_publish_template_then_list_get_and_instantiate(
	api: APIClient, workflow: Workflow, owner: User
) -> None:
	workflow_publish(actor=owner, workflow=workflow)
	url = f"{API}/workflows/{workflow.pk}/publish-template/"
	payload = {"category": "Finance", "industry": "Retail", "tags": ["orders"], "sample_input": {"a": 1}}

	created = api.post(url, payload, format="json")
	republished = api.post(url, payload, format="json")
	listed = api.get(f"{API}/templates/", {"category": "finance", "industry": "retail", "tag": "orders"})
	detail = api.get(f"{API}/templates/{workflow.slug}/")
	made = api.post(
		f"{API}/templates/{created.json()['id']}/instantiate/",
		{"name": "Mine", "slug": "mine"},
		format="json",
	)

	assert created.status_code == 201
	assert created.json()["version"] == 1
	assert republished.status_code == 200
	assert republished.json()["version"] == 2
	assert [t["slug"] for t in listed.json()["results"]] == [workflow.slug]
	assert detail.json()["definition"] == linear()
	assert detail.json()["sample_input"] == {"a": 1}
	assert made.status_code == 201
	assert made.json()["slug"] == "mine"
	assert made.json()["draft"] == linear()


def test_template_list_search_and_bad_filters(api: APIClient) -> None:
	problem(api.get(f"{API}/templates/", {"sort": "name"}), 400)
	assert api.get(f"{API}/templates/", {"search": "zzz-nothing-matches"}).json()["results"] == []


def test_publish_template_needs_a_published_version(api: APIClient, workflow: Workflow) -> None:
	problem(
		api.post(
			f"{API}/workflows/{workflow.pk}/publish-template/",
			{"category": "Finance", "industry": "Retail"},
			format="json",
		),
		409,
	)


@pytest.mark.parametrize(
	("payload", "expected"),
	[({"industry": "Retail"}, {"/category"}), ({"category": " ", "industry": "x"}, {"/category"})],
)
def test_publish_template_refuses_bad_input(
	api: APIClient, workflow: Workflow, owner: User, payload: dict[str, Any], expected: set[str]
) -> None:
	workflow_publish(actor=owner, workflow=workflow)

	body = problem(api.post(f"{API}/workflows/{workflow.pk}/publish-template/", payload, format="json"), 400)

	assert expected <= pointers(body)


def test_instantiate_refuses_bad_input(api: APIClient, workflow: Workflow, owner: User) -> None:
	workflow_publish(actor=owner, workflow=workflow)
	template = template_publish(actor=owner, workflow=workflow, category="c", industry="i")

	body = problem(
		api.post(f"{API}/templates/{template.pk}/instantiate/", {"title": "x"}, format="json"), 400
	)

	assert pointers(body) == {"/title"}


# --- Definition schema ------------------------------------------------------------------


@pytest.mark.parametrize("role", list(Role))
def test_definition_schema_is_open_to_every_member(
	role_client: Callable[[Role | str], APIClient], role: Role
) -> None:
	body = role_client(role).get(f"{API}/definition-schema/").json()

	assert body["schema"]["type"] == "object"
	assert body["limits"]["max_nodes"] > 0


# --- Another tenant's objects -----------------------------------------------------------

_FOREIGN_WORKFLOW_ROUTES = [
	("get", "/workflows/{w}/"),
	("patch", "/workflows/{w}/"),
	("delete", "/workflows/{w}/"),
	("post", "/workflows/{w}/validate/"),
	("post", "/workflows/{w}/publish/"),
	("post", "/workflows/{w}/archive/"),
	("post", "/workflows/{w}/unarchive/"),
	("post", "/workflows/{w}/rollback/"),
	("get", "/workflows/{w}/versions/"),
	("get", "/workflows/{w}/versions/1/"),
	("get", "/workflows/{w}/history/"),
	("get", "/workflows/{w}/diff/?base=v1"),
	("get", "/workflows/{w}/export/"),
	("post", "/workflows/{w}/publish-template/"),
	("get", "/templates/{t}/"),
	("post", "/templates/{t}/instantiate/"),
]


@pytest.mark.parametrize(("method", "route"), _FOREIGN_WORKFLOW_ROUTES)
@pytest.mark.parametrize("by", ["pk", "slug"])
def test_another_tenants_objects_are_404(
	api: APIClient, foreign: dict[str, Any], method: str, route: str, by: str
) -> None:
	url = API + route.format(w=getattr(foreign["workflow"], by), t=getattr(foreign["template"], by))
	bodies = {
		"/rollback/": {"version": 1},
		"/publish-template/": {"category": "c", "industry": "i"},
	}
	payload = next((v for k, v in bodies.items() if k in route), {})

	problem(getattr(api, method)(url, payload, format="json"), 404)
	foreign["workflow"].refresh_from_db()
	assert not foreign["workflow"].is_archived


# --- Role x action ----------------------------------------------------------------------

EDITORS = {Role.EDITOR, Role.ADMIN, Role.OWNER}
TEMPLATE_PUBLISHERS = {Role.ADMIN, Role.OWNER}


def _act(action: str, client: APIClient, workflow: Workflow) -> Any:
	url = f"{API}/workflows/{workflow.pk}/"
	calls: dict[str, Callable[[], Any]] = {
		"create": lambda: client.post(f"{API}/workflows/", {"name": "New one"}, format="json"),
		"update": lambda: client.patch(url, {"name": "Renamed"}, format="json"),
		"delete": lambda: client.delete(url),
		"publish": lambda: client.post(f"{url}publish/", {}, format="json"),
		"archive": lambda: client.post(f"{url}archive/"),
		"unarchive": lambda: client.post(f"{url}unarchive/"),
		"rollback": lambda: client.post(f"{url}rollback/", {"version": 1}, format="json"),
		"import": lambda: client.post(
			f"{API}/workflows/import/",
			{"document": client.get(f"{url}export/").content.decode(), "slug": "imported"},
			format="json",
		),
		"instantiate": lambda: client.post(
			f"{API}/templates/{workflow.slug}/instantiate/", {"slug": "instance"}, format="json"
		),
		"publish-template": lambda: client.post(
			f"{url}publish-template/", {"category": "c", "industry": "i"}, format="json"
		),
	}
	return calls[action]()


_ACTIONS: dict[str, tuple[Perm, set[Role]]] = {
	"create": (Perm.WORKFLOW_EDIT, EDITORS),
	"update": (Perm.WORKFLOW_EDIT, EDITORS),
	"delete": (Perm.WORKFLOW_DELETE, EDITORS),
	"publish": (Perm.WORKFLOW_PUBLISH, EDITORS),
	"archive": (Perm.WORKFLOW_EDIT, EDITORS),
	"unarchive": (Perm.WORKFLOW_EDIT, EDITORS),
	"rollback": (Perm.WORKFLOW_EDIT, EDITORS),
	"import": (Perm.WORKFLOW_EDIT, EDITORS),
	"instantiate": (Perm.WORKFLOW_EDIT, EDITORS),
	"publish-template": (Perm.TEMPLATE_PUBLISH, TEMPLATE_PUBLISHERS),
}


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("action", list(_ACTIONS))
def test_role_action_matrix(
	role_client: Callable[[Role | str], APIClient],
	workflow_factory: Callable[..., Workflow],
	owner: User,
	role: Role,
	action: str,
) -> None:
	perm, allowed = _ACTIONS[action]
	assert (role in allowed) == role_allows(role, perm), "the test's table drifted from workflows/roles.py"
	workflow = workflow_factory(published=True)
	if action == "unarchive":
		workflow_archive(actor=owner, workflow=workflow)
	if action == "instantiate":
		template_publish(actor=owner, workflow=workflow, category="c", industry="i")
	if action == "rollback":
		workflow_update(actor=owner, workflow=workflow, definition=linear(value=2))

	response = _act(action, role_client(role), workflow)

	if role in allowed:
		assert 200 <= response.status_code < 300, response.content
	else:
		problem(response, 403)


def test_a_body_that_is_not_an_object_is_400(api: APIClient) -> None:
	body = problem(api.post(f"{API}/workflows/", ["name"], format="json"), 400)

	assert pointers(body) == {""}
