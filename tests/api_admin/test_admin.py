"""Administering a tenant over REST: the tenant, my tenants, members and roles (given/when/then)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.api_admin.conftest import PROBLEM
from workflows.models import AuditEvent, Membership, Tenant, User
from workflows.roles import ROLE_PERMISSIONS, Role

pytestmark = pytest.mark.django_db

ROLES = [r.value for r in Role]
ADMINS = {"admin", "owner"}


def problem(response: Any, status: int) -> dict[str, Any]:
	assert response.status_code == status, response.content
	assert response["Content-Type"] == PROBLEM
	return response.json()


def membership(tenant: Tenant, user: User) -> Membership:
	return Membership.objects.for_tenant(tenant).get(user=user)


# --- the role x action matrix --------------------------------------------------------------------


@pytest.fixture
def target(tenant: Tenant, member_factory: Callable[..., User]) -> Membership:
	"""A viewer the actions act on."""
	return membership(tenant, member_factory(tenant, Role.VIEWER))


def _actions(target: Membership, new_user: User) -> dict[str, tuple[str, str, dict[str, Any]]]:
	member = f"/api/v1/members/{target.pk}/"
	return {
		"tenant.read": ("get", "/api/v1/tenant/", {}),
		"tenant.rename": ("patch", "/api/v1/tenant/", {"name": "Renamed"}),
		"tenants.list": ("get", "/api/v1/tenants/", {}),
		"roles.list": ("get", "/api/v1/roles/", {}),
		"members.list": ("get", "/api/v1/members/", {}),
		"members.add": ("post", "/api/v1/members/", {"username": new_user.username, "role": "viewer"}),
		"member.read": ("get", member, {}),
		"member.change_role": ("patch", member, {"role": "editor"}),
		"member.remove": ("delete", member, {}),
	}


_ALLOWED_STATUS = {"members.add": 201, "member.remove": 204}
_ADMIN_ONLY = {"tenant.rename", "members.add", "member.change_role", "member.remove"}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
	"action",
	[
		"tenant.read",
		"tenant.rename",
		"tenants.list",
		"roles.list",
		"members.list",
		"members.add",
		"member.read",
		"member.change_role",
		"member.remove",
	],
)
def test_role_by_action_matrix(
	clients: dict[str, APIClient],
	target: Membership,
	user_factory: Callable[..., User],
	role: str,
	action: str,
) -> None:
	method, url, data = _actions(target, user_factory())[action]

	response = getattr(clients[role], method)(url, data, format="json")

	allowed = role in ADMINS or action not in _ADMIN_ONLY
	expected = _ALLOWED_STATUS.get(action, 200) if allowed else 403
	assert response.status_code == expected, (role, action, response.content)
	if not allowed:
		assert "Your role does not allow" in problem(response, 403)["detail"]


# --- the tenant ----------------------------------------------------------------------------------


def test_read_and_rename_the_tenant(
	tenant: Tenant, owner: User, token_client: Callable[[User, Tenant], APIClient]
) -> None:
	client = token_client(owner, tenant)

	before = client.get("/api/v1/tenant/").json()
	renamed = client.patch("/api/v1/tenant/", {"name": "  Acme Operations "}, format="json")

	assert before == {
		"id": str(tenant.pk),
		"slug": tenant.slug,
		"name": tenant.name,
		"created_at": before["created_at"],
		"role": "owner",
	}
	assert renamed.status_code == 200
	assert renamed.json()["name"] == "Acme Operations"
	tenant.refresh_from_db()
	assert tenant.name == "Acme Operations"
	event = AuditEvent.objects.for_tenant(tenant).get(action="tenant.update")
	assert event.changes["name"]["after"] == "Acme Operations"


@pytest.mark.parametrize(
	("data", "pointer"),
	[({"name": "   "}, "/name"), ({"slug": "new"}, "/slug"), ({}, "/name"), ({"name": "x" * 201}, "/name")],
)
def test_renaming_refuses_bad_input(
	tenant: Tenant,
	owner: User,
	token_client: Callable[[User, Tenant], APIClient],
	data: dict[str, Any],
	pointer: str,
) -> None:
	response = token_client(owner, tenant).patch("/api/v1/tenant/", data, format="json")

	assert pointer in {e["pointer"] for e in problem(response, 400)["errors"]}


def test_my_tenants_with_my_role_in_each(
	tenant_factory: Callable[..., Tenant],
	user_factory: Callable[..., User],
	token_client: Callable[[User, Tenant], APIClient],
) -> None:
	me = user_factory()
	first, second, left, foreign = (tenant_factory(name=n) for n in ("Alpha", "Beta", "Gamma", "Delta"))
	Membership.objects.for_tenant(first).create(tenant=first, user=me, role=Role.ADMIN)
	Membership.objects.for_tenant(second).create(tenant=second, user=me, role=Role.VIEWER)
	gone = Membership.objects.for_tenant(left).create(tenant=left, user=me, role=Role.EDITOR)
	Membership.objects.for_tenant(left).filter(pk=gone.pk).update(deleted_at=gone.created_at)

	listed = token_client(me, second).get("/api/v1/tenants/").json()

	assert [(t["name"], t["role"], t["current"]) for t in listed] == [
		("Alpha", "admin", False),
		("Beta", "viewer", True),
	]
	assert str(foreign.pk) not in str(listed)


def test_roles_list_every_role_and_its_permissions(
	tenant: Tenant, member_factory: Callable[..., User], token_client: Callable[[User, Tenant], APIClient]
) -> None:
	viewer = token_client(member_factory(tenant, Role.VIEWER), tenant)

	roles = viewer.get("/api/v1/roles/").json()

	assert [r["role"] for r in roles] == ["viewer", "editor", "operator", "admin", "owner"]
	for entry in roles:
		assert entry["label"] == entry["role"].capitalize()
		assert set(entry["permissions"]) == {p.value for p in ROLE_PERMISSIONS[Role(entry["role"])]}
	assert "owner.manage" in roles[-1]["permissions"]
	assert "run.operate" not in roles[1]["permissions"]


# --- adding members ------------------------------------------------------------------------------


@pytest.fixture
def admin_client(
	tenant: Tenant, member_factory: Callable[..., User], token_client: Callable[[User, Tenant], APIClient]
) -> APIClient:
	return token_client(member_factory(tenant, Role.ADMIN), tenant)


def test_add_members_by_username_or_email(
	tenant: Tenant, admin_client: APIClient, user_factory: Callable[..., User]
) -> None:
	by_name, by_mail = user_factory(), user_factory(email="Ops.Lead@Example.com")

	first = admin_client.post(
		"/api/v1/members/", {"username": by_name.username, "role": "editor"}, format="json"
	)
	second = admin_client.post(
		"/api/v1/members/", {"email": "ops.lead@example.com", "role": "operator"}, format="json"
	)

	assert first.status_code == 201, first.content
	assert (first.json()["username"], first.json()["role"]) == (by_name.username, "editor")
	assert second.status_code == 201
	assert membership(tenant, by_mail).role == Role.OPERATOR
	listed = {m["username"]: m["role"] for m in admin_client.get("/api/v1/members/").json()}
	assert listed[by_name.username] == "editor"
	assert AuditEvent.objects.for_tenant(tenant).filter(action="membership.create").count() >= 2


@pytest.mark.parametrize(
	("data", "pointer", "says"),
	[
		({"role": "viewer"}, "", "username or its email"),
		({"username": "x", "email": "x@example.com", "role": "viewer"}, "", "not both"),
		({"username": "nobody-here", "role": "viewer"}, "/username", "No active account"),
		({"email": "nobody@example.com", "role": "viewer"}, "/email", "No active account"),
		({"email": "not-an-email", "role": "viewer"}, "/email", "valid email"),
		({"username": "{known}", "role": "boss"}, "/role", "Unknown role"),
		({"username": "{known}", "role": "viewer", "tenant": "x"}, "/tenant", "Unknown field"),
	],
)
def test_adding_a_member_refuses_bad_input(
	admin_client: APIClient,
	user_factory: Callable[..., User],
	data: dict[str, Any],
	pointer: str,
	says: str,
) -> None:
	known = user_factory()
	data = {k: (known.username if v == "{known}" else v) for k, v in data.items()}

	errors = problem(admin_client.post("/api/v1/members/", data, format="json"), 400)["errors"]

	assert [e["pointer"] for e in errors] == [pointer]
	assert says in errors[0]["message"]


def test_an_unknown_account_says_who_creates_accounts(admin_client: APIClient) -> None:
	errors = problem(
		admin_client.post("/api/v1/members/", {"username": "ghost", "role": "viewer"}, format="json"), 400
	)["errors"]

	assert "operator" in errors[0]["hint"]


def test_an_email_shared_by_two_accounts_needs_the_username(
	admin_client: APIClient, user_factory: Callable[..., User]
) -> None:
	user_factory(email="shared@example.com")
	user_factory(email="shared@example.com")

	errors = problem(
		admin_client.post(
			"/api/v1/members/", {"email": "shared@example.com", "role": "viewer"}, format="json"
		),
		400,
	)["errors"]

	assert "Several accounts" in errors[0]["message"]
	assert "username" in errors[0]["hint"]


def test_inactive_accounts_and_members_cannot_be_added_again(
	tenant: Tenant, admin_client: APIClient, user_factory: Callable[..., User], owner: User
) -> None:
	inactive = user_factory(is_active=False)

	dormant = admin_client.post(
		"/api/v1/members/", {"username": inactive.username, "role": "viewer"}, format="json"
	)
	twice = admin_client.post(
		"/api/v1/members/", {"username": owner.username, "role": "viewer"}, format="json"
	)

	problem(dormant, 400)
	assert "member already" in problem(twice, 409)["detail"]


def test_non_admins_cannot_probe_accounts(
	tenant: Tenant, member_factory: Callable[..., User], token_client: Callable[[User, Tenant], APIClient]
) -> None:
	operator = token_client(member_factory(tenant, Role.OPERATOR), tenant)

	response = operator.post("/api/v1/members/", {"username": "ghost", "role": "viewer"}, format="json")

	problem(response, 403)


def test_only_owners_make_owners(
	tenant: Tenant,
	owner: User,
	admin_client: APIClient,
	user_factory: Callable[..., User],
	token_client: Callable[[User, Tenant], APIClient],
) -> None:
	candidate = user_factory()

	by_admin = admin_client.post(
		"/api/v1/members/", {"username": candidate.username, "role": "owner"}, format="json"
	)
	by_owner = token_client(owner, tenant).post(
		"/api/v1/members/", {"username": candidate.username, "role": "owner"}, format="json"
	)

	problem(by_admin, 403)
	assert by_owner.status_code == 201
	assert membership(tenant, candidate).role == Role.OWNER


# --- changing roles and removing members ---------------------------------------------------------


def test_change_a_role_and_remove_a_member(
	tenant: Tenant, admin_client: APIClient, target: Membership
) -> None:
	url = f"/api/v1/members/{target.pk}/"

	read = admin_client.get(url)
	changed = admin_client.patch(url, {"role": "operator"}, format="json")
	removed = admin_client.delete(url)
	after = admin_client.get(url)

	assert read.json()["role"] == "viewer"
	assert changed.json()["role"] == "operator"
	assert removed.status_code == 204
	problem(after, 404)
	assert str(target.pk) not in str(admin_client.get("/api/v1/members/").json())
	actions = set(AuditEvent.objects.for_tenant(tenant).values_list("action", flat=True))
	assert {"membership.update", "membership.delete"} <= actions


def test_the_last_owner_can_be_neither_demoted_nor_removed(
	tenant: Tenant, owner: User, token_client: Callable[[User, Tenant], APIClient]
) -> None:
	client = token_client(owner, tenant)
	url = f"/api/v1/members/{membership(tenant, owner).pk}/"

	demoted = client.patch(url, {"role": "admin"}, format="json")
	removed = client.delete(url)

	assert "last owner" in problem(demoted, 409)["detail"]
	assert "last owner" in problem(removed, 409)["detail"]
	assert membership(tenant, owner).role == Role.OWNER


def test_with_two_owners_one_may_step_down(
	tenant: Tenant,
	owner: User,
	member_factory: Callable[..., User],
	token_client: Callable[[User, Tenant], APIClient],
) -> None:
	second = member_factory(tenant, Role.OWNER)

	response = token_client(owner, tenant).patch(
		f"/api/v1/members/{membership(tenant, second).pk}/", {"role": "admin"}, format="json"
	)

	assert response.status_code == 200
	assert membership(tenant, second).role == Role.ADMIN


def test_admins_cannot_touch_owners(tenant: Tenant, owner: User, admin_client: APIClient) -> None:
	url = f"/api/v1/members/{membership(tenant, owner).pk}/"

	problem(admin_client.patch(url, {"role": "viewer"}, format="json"), 403)
	problem(admin_client.delete(url), 403)


def test_any_member_may_leave(
	tenant: Tenant, member_factory: Callable[..., User], token_client: Callable[[User, Tenant], APIClient]
) -> None:
	viewer = member_factory(tenant, Role.VIEWER)
	client = token_client(viewer, tenant)

	response = client.delete(f"/api/v1/members/{membership(tenant, viewer).pk}/")

	assert response.status_code == 204
	assert not Membership.objects.for_tenant(tenant).filter(user=viewer).exists()


def test_changing_a_role_refuses_bad_input(admin_client: APIClient, target: Membership) -> None:
	url = f"/api/v1/members/{target.pk}/"

	unknown = problem(admin_client.patch(url, {"role": "superuser"}, format="json"), 400)
	missing = problem(admin_client.patch(url, {}, format="json"), 400)

	assert "viewer, editor, operator, admin, owner" in unknown["errors"][0]["hint"]
	assert [e["pointer"] for e in missing["errors"]] == ["/role"]


def test_another_tenants_member_is_not_found(
	admin_client: APIClient, tenant_factory: Callable[..., Tenant]
) -> None:
	other = tenant_factory()
	foreign = Membership.objects.for_tenant(other).get()
	url = f"/api/v1/members/{foreign.pk}/"

	for response in (
		admin_client.get(url),
		admin_client.patch(url, {"role": "viewer"}, format="json"),
		admin_client.delete(url),
	):
		problem(response, 404)
	assert Membership.objects.for_tenant(other).get().role == Role.OWNER
