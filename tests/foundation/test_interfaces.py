"""GraphQL and WebSocket authentication, the admin, problem+json errors, and system checks."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.core import checks
from django.test import Client, override_settings
from rest_framework.test import APIClient

from config.routing import websocket_urlpatterns
from workflows.api.errors import problem_exception_handler
from workflows.checks import check_configuration, check_dependencies
from workflows.consumers import tenant_group
from workflows.context import ContextLogFilter, run_context, tenant_scope
from workflows.models import AuditEvent, Membership, Tenant, User
from workflows.services.tokens import api_token_create
from workflows.ws_auth import tenant_auth_stack

pytestmark = pytest.mark.django_db

# --- GraphQL -----------------------------------------------------------------------------


def test_graphql_with_a_token(
	tenant: Tenant, owner: User, token_client: Callable[[User, Tenant], APIClient]
) -> None:
	response = token_client(owner, tenant).post(
		"/graphql", {"query": "{ viewer { username role } }"}, format="json"
	)

	assert response.json()["data"]["viewer"] == {"username": owner.username, "role": "owner"}


def test_graphql_refuses_bad_tokens_and_anonymous_callers() -> None:
	bad = APIClient().post(
		"/graphql", {"query": "{ viewer { username } }"}, format="json", HTTP_AUTHORIZATION="Bearer apg_nope"
	)
	anonymous = APIClient().post("/graphql", {"query": "{ viewer { username } }"}, format="json")

	assert bad.status_code == 401
	assert bad["WWW-Authenticate"].startswith("Bearer")
	assert anonymous.status_code == 401


def test_graphql_session_needs_csrf(tenant: Tenant, owner: User) -> None:
	client = Client(enforce_csrf_checks=True)
	client.force_login(owner)

	refused = client.post(
		"/graphql", json.dumps({"query": "{ viewer { username } }"}), content_type="application/json"
	)
	client.get("/")  # sets the CSRF cookie
	token = client.cookies["csrftoken"].value
	allowed = client.post(
		"/graphql",
		json.dumps({"query": "{ viewer { username } }"}),
		content_type="application/json",
		HTTP_X_CSRFTOKEN=token,
	)

	assert refused.status_code == 403
	assert allowed.json()["data"]["viewer"]["username"] == owner.username


def test_graphql_permission_errors_are_messages_not_traces(
	tenant: Tenant, member_factory: Callable[..., User], token_client: Callable[[User, Tenant], APIClient]
) -> None:
	viewer = member_factory(tenant, "viewer")

	response = token_client(viewer, tenant).post(
		"/graphql", {"query": "{ auditEvents { action } }"}, format="json"
	)

	errors = response.json()["errors"]
	assert errors[0]["message"] == "Your role does not allow audit.view."
	assert "Traceback" not in response.content.decode()


def test_graphql_session_user_without_tenant_gets_an_error(
	client: Client, user_factory: Callable[..., User]
) -> None:
	client.force_login(user_factory())

	response = client.post("/graphql", {"query": "{ viewer { username } }"}, content_type="application/json")

	assert "not a member of any organization" in response.json()["errors"][0]["message"]


# --- WebSocket -----------------------------------------------------------------------------


def _ws_app() -> Any:
	from channels.routing import URLRouter

	return tenant_auth_stack(URLRouter(websocket_urlpatterns))


def _token(user: User, tenant: Tenant) -> str:
	with tenant_scope(tenant):
		return api_token_create(actor=user, tenant=tenant, name="ws").raw


@pytest.mark.django_db(transaction=True)
async def test_websocket_with_a_token_header_receives_tenant_events(
	tenant_factory: Callable[..., Tenant],
) -> None:
	from asgiref.sync import sync_to_async

	tenant = await sync_to_async(tenant_factory)()
	owner = await sync_to_async(lambda: Membership.objects.for_tenant(tenant).get().user)()
	raw = await sync_to_async(_token)(owner, tenant)
	communicator = WebsocketCommunicator(
		_ws_app(), "/ws/tenant/", headers=[(b"authorization", f"Bearer {raw}".encode())]
	)

	connected, _ = await communicator.connect(timeout=10)
	hello = await communicator.receive_json_from(timeout=5)
	caught_up = await communicator.receive_json_from(timeout=5)
	layer = get_channel_layer()
	assert layer is not None
	await layer.group_send(tenant_group(tenant.pk), {"type": "tenant.event", "event": {"seq": 1}})
	event = await communicator.receive_json_from(timeout=5)
	await communicator.send_json_to({"type": "ping"})
	pong = await communicator.receive_json_from(timeout=5)
	await communicator.send_json_to({"type": "dance"})
	unknown = await communicator.receive_json_from(timeout=5)
	await communicator.disconnect()

	assert connected
	assert hello == {"type": "hello", "tenant": tenant.slug, "user": owner.username}
	assert caught_up["type"] == "caught_up"
	assert event == {"type": "event", "event": {"seq": 1}}
	assert pong == {"type": "pong"}
	assert unknown["type"] == "error"


@pytest.mark.django_db(transaction=True)
async def test_websocket_token_as_subprotocol(tenant_factory: Callable[..., Tenant]) -> None:
	from asgiref.sync import sync_to_async

	tenant = await sync_to_async(tenant_factory)()
	owner = await sync_to_async(lambda: Membership.objects.for_tenant(tenant).get().user)()
	raw = await sync_to_async(_token)(owner, tenant)
	communicator = WebsocketCommunicator(
		_ws_app(), "/ws/tenant/", subprotocols=["apg.v1", f"apg.token.{raw}"]
	)

	connected, subprotocol = await communicator.connect(timeout=10)
	await communicator.disconnect()

	assert connected
	assert subprotocol == "apg.v1"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("headers", [[], [(b"authorization", b"Bearer apg_forged")]])
async def test_websocket_refuses_anonymous_and_bad_tokens(headers: list[tuple[bytes, bytes]]) -> None:
	communicator = WebsocketCommunicator(_ws_app(), "/ws/tenant/", headers=headers)

	connected, code = await communicator.connect(timeout=10)

	assert not connected
	assert code == 4401


@pytest.mark.django_db(transaction=True)
async def test_websocket_with_a_session_cookie(tenant_factory: Callable[..., Tenant]) -> None:
	from asgiref.sync import sync_to_async

	tenant = await sync_to_async(tenant_factory)()
	owner = await sync_to_async(lambda: Membership.objects.for_tenant(tenant).get().user)()
	client = Client()
	await sync_to_async(client.force_login)(owner)
	cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
	communicator = WebsocketCommunicator(_ws_app(), "/ws/tenant/", headers=[(b"cookie", cookie)])

	connected, _ = await communicator.connect(timeout=10)
	hello = await communicator.receive_json_from(timeout=5)
	await communicator.disconnect()

	assert connected
	assert hello["tenant"] == tenant.slug


# --- Admin ----------------------------------------------------------------------------------


def test_superuser_admin_sees_every_tenant_and_changes_are_audited(
	client: Client, tenant_factory: Callable[..., Tenant], user_factory: Callable[..., User]
) -> None:
	a, b = tenant_factory(name="First Co"), tenant_factory(name="Second Co")
	root = user_factory(is_superuser=True, is_staff=True)
	client.force_login(root)

	listing = client.get("/admin/workflows/tenant/").content.decode()
	membership = Membership.objects.for_tenant(b).get()
	page = client.get(f"/admin/workflows/membership/{membership.pk}/change/")
	saved = client.post(
		f"/admin/workflows/tenant/{a.pk}/change/",
		{"slug": a.slug, "name": "First Co Renamed", "is_active": "on"},
	)

	assert "First Co" in listing
	assert "Second Co" in listing
	assert page.status_code == 200
	assert saved.status_code == 302
	event = AuditEvent.objects.for_tenant(a).get(action="tenant.update")
	assert event.changes["name"] == {"before": "First Co", "after": "First Co Renamed"}
	assert event.actor == root


def test_admin_delete_is_audited_and_audit_rows_are_read_only(
	client: Client, tenant: Tenant, member_factory: Callable[..., User], user_factory: Callable[..., User]
) -> None:
	extra = member_factory(tenant, "viewer")
	membership = Membership.objects.for_tenant(tenant).get(user=extra)
	root = user_factory(is_superuser=True, is_staff=True)
	client.force_login(root)

	client.post(
		"/admin/workflows/membership/",
		{"action": "delete_selected", "_selected_action": [str(membership.pk)], "post": "yes"},
	)
	event = AuditEvent.objects.for_tenant(tenant).get(action="membership.delete")
	change_page = client.get(f"/admin/workflows/auditevent/{event.pk}/change/")
	delete_page = client.get(f"/admin/workflows/auditevent/{event.pk}/delete/")
	add_token = client.get("/admin/workflows/apitoken/add/")
	users = client.get("/admin/workflows/user/")

	assert not Membership.objects.for_tenant(tenant).filter(pk=membership.pk).exists()
	assert b"Save" not in change_page.content
	assert delete_page.status_code == 403
	assert add_token.status_code == 403
	assert users.status_code == 200


def test_tenant_admin_staff_cannot_change_in_the_admin_and_cannot_see_users(
	client: Client, tenant: Tenant, owner: User
) -> None:
	owner.is_staff = True
	owner.save()
	client.force_login(owner)
	membership = Membership.objects.for_tenant(tenant).get()

	change = client.post(f"/admin/workflows/membership/{membership.pk}/change/", {"role": "viewer"})
	users = client.get("/admin/workflows/user/")

	assert change.status_code == 403
	assert users.status_code == 403


def test_admin_add_through_the_form_is_audited(
	client: Client, tenant: Tenant, user_factory: Callable[..., User]
) -> None:
	root = user_factory(is_superuser=True, is_staff=True)
	newcomer = user_factory()
	client.force_login(root)

	client.post(
		"/admin/workflows/membership/add/",
		{"tenant": str(tenant.pk), "user": str(newcomer.pk), "role": "viewer"},
	)

	assert AuditEvent.objects.for_tenant(tenant).filter(action="membership.create", actor=root).count() == 1


# --- Errors, checks, logging ------------------------------------------------------------------


def test_unexpected_errors_become_a_500_problem_without_a_trace() -> None:
	response = problem_exception_handler(RuntimeError("secret internals"), {"view": object()})

	assert response is not None
	assert response.status_code == 500
	assert response.data["type"].endswith("/internal")
	assert "secret internals" not in json.dumps(response.data)


@override_settings(DEBUG=True)
def test_debug_lets_the_traceback_through() -> None:
	assert problem_exception_handler(RuntimeError("x"), {}) is None


def test_django_404_and_permission_errors_become_problems() -> None:
	from django.core.exceptions import PermissionDenied
	from django.http import Http404

	not_found = problem_exception_handler(Http404("x"), {})
	forbidden = problem_exception_handler(PermissionDenied(), {})

	assert not_found is not None
	assert not_found.status_code == 404
	assert forbidden is not None
	assert forbidden.status_code == 403


def test_unknown_api_route_is_a_404(
	tenant: Tenant, owner: User, token_client: Callable[[User, Tenant], APIClient]
) -> None:
	response = token_client(owner, tenant).get("/api/v1/tokens/not-a-uuid/")

	assert response.status_code == 404


@override_settings(DEBUG=True)
def test_checks_warn_about_debug_and_missing_redis_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
	from django.conf import settings

	monkeypatch.setitem(settings.DATABASES["default"], "ENGINE", "django.db.backends.postgresql")
	monkeypatch.setattr(settings, "EMBEDDED", True)

	ids = {m.id for m in check_configuration()}

	assert ids == {"apg.W001", "apg.W002"}


@override_settings(DEBUG=False, ALLOWED_HOSTS=[])
def test_checks_refuse_empty_allowed_hosts() -> None:
	messages = check_configuration()

	assert [m.id for m in messages] == ["apg.E001"]
	assert messages[0].level == checks.ERROR


def test_dependencies_are_present() -> None:
	assert check_dependencies() == []


def test_log_records_carry_request_tenant_run_and_step(tenant: Tenant) -> None:
	record = logging.LogRecord("apg.test", logging.INFO, __file__, 1, "hello", (), None)

	with tenant_scope(tenant), run_context(run_id="run-1", step_id="step-9"):
		ContextLogFilter().filter(record)

	assert record.__dict__["tenant_id"] == str(tenant.pk)
	assert record.__dict__["run_id"] == "run-1"
	assert record.__dict__["step_id"] == "step-9"
	assert record.__dict__["request_id"] == "-"


def test_json_log_lines(tenant: Tenant, capsys: pytest.CaptureFixture[str]) -> None:
	from pythonjsonlogger.json import JsonFormatter

	from config.logging import build_logging

	spec = build_logging(level="INFO", json_lines=True)["formatters"]["default"]
	formatter = JsonFormatter(spec["fmt"], rename_fields=spec["rename_fields"])
	record = logging.LogRecord("apg.test", logging.INFO, __file__, 1, "run %s done", ("r1",), None)
	with tenant_scope(tenant):
		ContextLogFilter().filter(record)

	line = json.loads(formatter.format(record))

	assert line["message"] == "run r1 done"
	assert line["tenant_id"] == str(tenant.pk)
	assert line["level"] == "INFO"
	assert line["logger"] == "apg.test"


def test_the_admin_lists_every_model_and_execution_records_are_read_only(
	client: Client, tenant: Tenant, user_factory: Callable[..., User]
) -> None:
	from django.apps import apps
	from django.contrib import admin as django_admin

	root = user_factory(is_superuser=True, is_staff=True)
	client.force_login(root)
	ours = [
		m
		for m in apps.get_models()
		if m._meta.app_label == "workflows" and not m.__name__.startswith("Historical")
	]

	missing = [m.__name__ for m in ours if m not in django_admin.site._registry]
	pages = {m.__name__: client.get(f"/admin/workflows/{m._meta.model_name}/").status_code for m in ours}
	add_run = client.get("/admin/workflows/run/add/")

	assert missing == []
	assert set(pages.values()) == {200}, pages
	assert add_run.status_code == 403


@pytest.mark.parametrize(
	("body", "pointer"),
	[
		({"name": "bad\u0000name"}, "/name"),
		({"name": "ok", "x": [{"k\u0000": 1}]}, "/x/0/k\u0000"),
	],
)
def test_nul_characters_are_refused_with_a_4xx_not_a_crash(
	tenant: Tenant,
	owner: User,
	token_client: Callable[[User, Tenant], APIClient],
	body: dict[str, Any],
	pointer: str,
) -> None:
	response = token_client(owner, tenant).post("/api/v1/tokens/", body, format="json")

	assert response.status_code == 400
	assert "NUL character" in response.json()["detail"]
	assert response["Content-Type"] == "application/problem+json"


def test_an_unpaired_surrogate_is_refused_with_a_4xx_not_a_crash(
	tenant: Tenant, owner: User, token_client: Callable[[User, Tenant], APIClient]
) -> None:
	# Valid JSON whose string decodes to a lone UTF-16 surrogate, which no database text can hold.
	body = '{"name": "bad\\ud800name"}'

	response = token_client(owner, tenant).post("/api/v1/tokens/", body, content_type="application/json")

	assert response.status_code == 400
	assert "unpaired surrogate" in response.json()["detail"]
	assert "/name" in response.json()["detail"]
