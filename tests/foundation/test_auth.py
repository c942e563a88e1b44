"""Sign-in pages, lockout, API tokens: creation, use, expiry, revocation, and bad credentials."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from workflows.context import tenant_scope
from workflows.models import ApiToken, Membership, Tenant, User
from workflows.roles import Role
from workflows.services.tokens import (
	api_token_authenticate,
	api_token_authenticate_member,
	api_token_create,
	api_token_revoke,
)

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _fresh_throttle() -> None:
	cache.clear()


def test_login_page_then_dashboard_shows_the_tenant_name(client: Client, tenant: Tenant, owner: User) -> None:
	page = client.get("/", follow=True)
	assert b'type="password"' in page.content

	response = client.post(
		"/accounts/login/", {"username": owner.username, "password": PASSWORD}, follow=True
	)

	assert response.status_code == 200
	assert tenant.name in response.content.decode()
	assert "Owner" in response.content.decode()


@pytest.mark.parametrize("which", ["username", "password"])
def test_wrong_credentials_get_401_without_saying_which_part(client: Client, owner: User, which: str) -> None:
	data = {"username": owner.username, "password": PASSWORD, which: "wrong"}

	response = client.post("/accounts/login/", data)

	assert response.status_code == 401
	assert "The username or password is incorrect." in response.content.decode()


def test_repeated_failures_lock_the_account_out(client: Client, owner: User, settings: object) -> None:
	for _ in range(5):
		assert (
			client.post("/accounts/login/", {"username": owner.username, "password": "nope"}).status_code
			== 401
		)

	locked = client.post("/accounts/login/", {"username": owner.username, "password": PASSWORD})

	assert locked.status_code == 429
	assert int(locked["Retry-After"]) == 900
	assert "Too many failed sign-ins" in locked.content.decode()


def test_a_successful_sign_in_resets_the_count(client: Client, owner: User, tenant: Tenant) -> None:
	for _ in range(4):
		client.post("/accounts/login/", {"username": owner.username, "password": "nope"})
	assert (
		client.post("/accounts/login/", {"username": owner.username, "password": PASSWORD}).status_code == 302
	)
	client.logout()

	for _ in range(4):
		client.post("/accounts/login/", {"username": owner.username, "password": "nope"})

	assert (
		client.post("/accounts/login/", {"username": owner.username, "password": PASSWORD}).status_code == 302
	)


def test_logout_and_password_change(client: Client, owner: User, tenant: Tenant) -> None:
	client.force_login(owner)

	form = client.get("/accounts/password/")
	changed = client.post(
		"/accounts/password/",
		{
			"old_password": PASSWORD,
			"new_password1": "a much newer passphrase",
			"new_password2": "a much newer passphrase",
		},
		follow=True,
	)
	client.post("/accounts/logout/")
	after = client.get("/")

	assert form.status_code == 200
	assert b"Password changed" in changed.content
	assert after.status_code == 302
	assert after["Location"].startswith("/accounts/login/")
	owner.refresh_from_db()
	assert owner.check_password("a much newer passphrase")


def test_user_without_tenant_sees_an_explanation(client: Client, user_factory: Callable[..., User]) -> None:
	client.force_login(user_factory())

	response = client.get("/")

	assert response.status_code == 403
	assert b"not a member of any active organization" in response.content


def test_tenant_switcher_changes_the_active_tenant(
	client: Client, tenant_factory: Callable[..., Tenant], user_factory: Callable[..., User]
) -> None:
	user = user_factory()
	first = tenant_factory(owner=user, name="Alpha Org", slug="alpha")
	second = tenant_factory(owner=user, name="Beta Org", slug="beta")
	client.force_login(user)

	before = client.get("/").content.decode()
	client.post("/tenants/switch/", {"tenant": second.slug})
	after = client.get("/").content.decode()
	refused = client.post("/tenants/switch/", {"tenant": "not-mine"}, follow=True)

	assert f"<h1>{first.name}</h1>" in before
	assert f"<h1>{second.name}</h1>" in after
	assert b"not a member of that organization" in refused.content


def test_tokens_page_shows_a_new_token_once_and_revokes(client: Client, owner: User, tenant: Tenant) -> None:
	client.force_login(owner)

	created = client.post("/tokens/", {"name": "laptop", "expires_in_days": 30})
	raw = created.context["new_token"]
	listing = client.get("/tokens/").content.decode()
	token = ApiToken.objects.for_tenant(tenant).get(name="laptop")
	client.post("/tokens/", {"revoke": str(token.pk)})
	bogus = client.post("/tokens/", {"revoke": "00000000-0000-0000-0000-000000000000"}, follow=True)
	invalid = client.post("/tokens/", {"name": ""})

	assert raw.startswith("apg_")
	assert raw in created.content.decode()
	assert raw not in listing
	assert token.prefix in listing
	assert api_token_authenticate(raw) is None
	assert b"No such token" in bogus.content
	assert invalid.status_code == 400


def test_members_page_lists_roles(
	client: Client, tenant: Tenant, owner: User, member_factory: Callable[..., User]
) -> None:
	member_factory(tenant, Role.OPERATOR, username="olga")
	client.force_login(owner)

	page = client.get("/members/").content.decode()

	assert "olga" in page
	assert "Operator" in page


def test_audit_page_for_admins_only(
	client: Client, tenant: Tenant, owner: User, member_factory: Callable[..., User]
) -> None:
	viewer = member_factory(tenant, Role.VIEWER)
	client.force_login(owner)
	client.post("/tokens/", {"name": "x"})

	admin_page = client.get("/audit/", {"action": "apitoken.create"})
	client.force_login(viewer)
	viewer_page = client.get("/audit/")

	assert admin_page.status_code == 200
	assert "apitoken.create" in admin_page.content.decode()
	assert viewer_page.status_code == 403


# --- API tokens --------------------------------------------------------------------------


def test_token_obtain_then_use_it(tenant: Tenant, owner: User) -> None:
	api = APIClient()

	response = api.post(
		"/api/v1/auth/token/",
		{"username": owner.username, "password": PASSWORD, "tenant": tenant.slug},
		format="json",
	)
	api.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['token']}")
	me = api.get("/api/v1/me/")

	assert response.status_code == 201
	assert response.json()["tenant"] == tenant.slug
	assert me.status_code == 200
	assert me.json()["tenant"]["slug"] == tenant.slug
	assert me.json()["role"] == "owner"
	assert "audit.view" in me.json()["permissions"]


@pytest.mark.parametrize("wrong", ["username", "password", "tenant"])
def test_token_obtain_with_any_wrong_part_is_the_same_401(
	tenant: Tenant, owner: User, tenant_factory: Callable[..., Tenant], wrong: str
) -> None:
	other = tenant_factory()  # exists, but owner is not a member
	data = {"username": owner.username, "password": PASSWORD, "tenant": tenant.slug}
	data[wrong] = other.slug if wrong == "tenant" else "wrong"

	response = APIClient().post("/api/v1/auth/token/", data, format="json")

	assert response.status_code == 401
	assert response.json()["detail"] == "Invalid credentials."
	assert response["WWW-Authenticate"].startswith("Bearer")
	assert response["Content-Type"] == "application/problem+json"


def test_token_obtain_is_throttled(tenant: Tenant, owner: User) -> None:
	api = APIClient()
	data = {"username": owner.username, "password": "nope", "tenant": tenant.slug}
	for _ in range(5):
		api.post("/api/v1/auth/token/", data, format="json")

	response = api.post("/api/v1/auth/token/", data | {"password": PASSWORD}, format="json")

	assert response.status_code == 429
	assert response["Retry-After"] == "900"
	assert "retry in" in response.json()["detail"]


def test_token_obtain_validates_input() -> None:
	response = APIClient().post("/api/v1/auth/token/", {"username": "x"}, format="json")

	assert response.status_code == 400
	pointers = {e["pointer"] for e in response.json()["errors"]}
	assert pointers == {"/password", "/tenant"}


@pytest.mark.parametrize(
	"header",
	[
		"Bearer apg_not-a-real-token",
		"Bearer nonsense",
		"Bearer",
		"Bearer a b",
		"Bearer " + "apg_" + "x" * 300,
	],
)
def test_malformed_or_unknown_tokens_get_401(header: str) -> None:
	response = APIClient().get("/api/v1/me/", HTTP_AUTHORIZATION=header)

	assert response.status_code == 401
	assert response.json()["detail"] == "Invalid or expired token."


def test_no_credentials_get_401() -> None:
	response = APIClient().get("/api/v1/me/")

	assert response.status_code == 401
	assert response["Content-Type"] == "application/problem+json"


def test_expired_and_revoked_tokens_are_refused(tenant: Tenant, owner: User) -> None:
	with tenant_scope(tenant):
		expired = api_token_create(actor=owner, tenant=tenant, name="old")
		revoked = api_token_create(actor=owner, tenant=tenant, name="leaked")
	ApiToken.objects.for_tenant(tenant).filter(pk=expired.token.pk).update(
		expires_at=timezone.now() - timedelta(seconds=1)
	)
	api_token_revoke(actor=owner, tenant=tenant, token_id=revoked.token.pk)

	for issued in (expired, revoked):
		response = APIClient().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {issued.raw}")
		assert response.status_code == 401
		assert response.json()["detail"] == "Invalid or expired token."


def test_a_token_stops_working_when_its_user_leaves_the_tenant(
	tenant: Tenant, member_factory: Callable[..., User], token_client: Callable[[User, Tenant], APIClient]
) -> None:
	viewer = member_factory(tenant, Role.VIEWER)
	client = token_client(viewer, tenant)
	assert client.get("/api/v1/me/").status_code == 200

	Membership.objects.for_tenant(tenant).filter(user=viewer).update(deleted_at=timezone.now())

	assert client.get("/api/v1/me/").status_code == 401


def test_a_deactivated_user_token_is_refused(
	tenant: Tenant, owner: User, token_client: Callable[[User, Tenant], APIClient]
) -> None:
	client = token_client(owner, tenant)
	owner.is_active = False
	owner.save()

	assert client.get("/api/v1/me/").status_code == 401


def test_last_used_is_recorded_at_most_once_a_minute(tenant: Tenant, owner: User) -> None:
	with tenant_scope(tenant):
		issued = api_token_create(actor=owner, tenant=tenant, name="cli")

	first = api_token_authenticate(issued.raw)
	second = api_token_authenticate(issued.raw)

	assert first is not None
	assert second is not None
	assert first.last_used_at is not None
	assert second.last_used_at == first.last_used_at


def test_tokens_api_lists_creates_and_revokes(
	tenant: Tenant, owner: User, token_client: Callable[[User, Tenant], APIClient]
) -> None:
	client = token_client(owner, tenant)

	created = client.post("/api/v1/tokens/", {"name": "ci", "never_expires": True}, format="json").json()
	listing = client.get("/api/v1/tokens/").json()
	revoked = client.delete(f"/api/v1/tokens/{created['id']}/")
	again = client.delete(f"/api/v1/tokens/{created['id']}/")
	after = {t["id"]: t for t in client.get("/api/v1/tokens/").json()}

	assert created["expires_at"] is None
	assert all("token" not in t and "key_hash" not in t for t in listing)
	assert revoked.status_code == 204
	assert again.status_code == 204  # revoking twice is harmless
	assert after[created["id"]]["status"] == "revoked"


def test_token_limits(tenant: Tenant, owner: User, token_client: Callable[[User, Tenant], APIClient]) -> None:
	client = token_client(owner, tenant)

	too_long = client.post("/api/v1/tokens/", {"name": "x", "expires_in_days": 5000}, format="json")
	blank = client.post("/api/v1/tokens/", {"name": "   "}, format="json")

	assert too_long.status_code == 400
	assert too_long.json()["errors"][0]["pointer"] == "/expires_in_days"
	assert blank.status_code == 400


def test_service_refuses_bad_lifetimes(tenant: Tenant, owner: User) -> None:
	from workflows.errors import ValidationFailed

	with tenant_scope(tenant), pytest.raises(ValidationFailed, match="lifetime"):
		api_token_create(actor=owner, tenant=tenant, name="x", expires_in=timedelta(seconds=5))


def test_admins_revoke_anyones_token_members_only_their_own(
	tenant: Tenant, owner: User, member_factory: Callable[..., User]
) -> None:
	from workflows.errors import NotFound, PermissionDenied

	viewer = member_factory(tenant, Role.VIEWER)
	editor = member_factory(tenant, Role.EDITOR)
	with tenant_scope(tenant):
		issued = api_token_create(actor=viewer, tenant=tenant, name="mine")

	with pytest.raises(PermissionDenied):
		api_token_revoke(actor=editor, tenant=tenant, token_id=issued.token.pk)
	api_token_revoke(actor=owner, tenant=tenant, token_id=issued.token.pk)
	with pytest.raises(NotFound):
		api_token_revoke(actor=owner, tenant=tenant, token_id="00000000-0000-0000-0000-000000000000")


def test_a_token_of_a_deactivated_tenant_is_refused(
	tenant: Tenant, owner: User, token_client: Callable[[User, Tenant], APIClient]
) -> None:
	client = token_client(owner, tenant)
	assert client.get("/api/v1/me/").status_code == 200

	Tenant.objects.filter(pk=tenant.pk).update(is_active=False)

	assert client.get("/api/v1/me/").status_code == 401


def test_a_deleted_token_is_refused(tenant: Tenant, owner: User) -> None:
	with tenant_scope(tenant):
		issued = api_token_create(actor=owner, tenant=tenant, name="gone")
	ApiToken.objects.for_tenant(tenant).filter(pk=issued.token.pk).update(deleted_at=timezone.now())

	response = APIClient().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {issued.raw}")

	assert response.status_code == 401


def test_a_role_change_applies_from_the_next_request(
	tenant: Tenant,
	owner: User,
	member_factory: Callable[..., User],
	token_client: Callable[[User, Tenant], APIClient],
) -> None:
	viewer = member_factory(tenant, Role.VIEWER)
	client = token_client(viewer, tenant)
	assert client.get("/api/v1/me/").json()["role"] == "viewer"
	assert client.get("/api/v1/audit-events/").status_code == 403

	Membership.objects.for_tenant(tenant).filter(user=viewer).update(role=Role.ADMIN)

	assert client.get("/api/v1/me/").json()["role"] == "admin"
	assert client.get("/api/v1/audit-events/").status_code == 200


def test_an_authenticated_request_reads_token_and_membership_in_one_query(
	tenant: Tenant,
	owner: User,
	token_client: Callable[[User, Tenant], APIClient],
	django_assert_num_queries: Callable[..., Any],
) -> None:
	client = token_client(owner, tenant)
	client.get("/api/v1/me/")  # the first use records last_used_at

	with django_assert_num_queries(1):
		response = client.get("/api/v1/me/")

	assert response.status_code == 200
	assert response.json()["role"] == "owner"


def test_the_token_lookup_loads_what_the_orm_loads(tenant: Tenant, owner: User) -> None:
	with tenant_scope(tenant):
		issued = api_token_create(actor=owner, tenant=tenant, name="cli", expires_in=timedelta(days=3))
	api_token_authenticate(issued.raw)  # records last_used_at

	found = api_token_authenticate_member(issued.raw)

	assert found is not None
	expected = ApiToken.objects._unfiltered().select_related("user", "tenant").get(pk=issued.token.pk)
	for loaded, stored in (
		(found.token, expected),
		(found.token.user, expected.user),
		(found.token.tenant, expected.tenant),
	):
		for field in type(stored)._meta.concrete_fields:
			assert getattr(loaded, field.attname) == getattr(stored, field.attname), field.name
	membership = Membership.objects.for_tenant(tenant).get(user=owner)
	assert (found.membership.pk, found.membership.role) == (membership.pk, "owner")
	assert found.membership.created_at == membership.created_at  # the rest loads on first use
	assert found.membership.user is found.token.user
