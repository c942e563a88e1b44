"""The audit trail: one event per mutation, with who, what, where from; never altered."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import DatabaseError, connection, transaction
from rest_framework.test import APIClient

from workflows.models import AuditEvent, AuditImmutableError, Membership, Tenant, User
from workflows.roles import Role
from workflows.services.audit import audit_record
from workflows.services.tenancy import membership_add, membership_change_role, tenant_update

pytestmark = pytest.mark.django_db


def _events(tenant: Tenant) -> list[AuditEvent]:
	return list(AuditEvent.objects.for_tenant(tenant).order_by("occurred_at"))


def test_each_mutation_leaves_exactly_one_event(
	tenant: Tenant, owner: User, user_factory: Callable[..., User]
) -> None:
	newcomer = user_factory()
	before = len(_events(tenant))

	membership = membership_add(actor=owner, tenant=tenant, user=newcomer, role="viewer")
	membership_change_role(actor=owner, tenant=tenant, membership=membership, role="editor")

	events = _events(tenant)[before:]
	assert [e.action for e in events] == ["membership.create", "membership.update"]
	update = events[1]
	assert update.actor == owner
	assert update.actor_label == owner.username
	assert update.object_type == "workflows.membership"
	assert update.object_id == str(membership.pk)
	assert update.changes["role"] == {"before": "viewer", "after": "editor"}
	assert "updated_at" not in update.changes


def test_a_refused_mutation_leaves_no_event(
	tenant: Tenant, member_factory: Callable[..., User], user_factory: Callable[..., User]
) -> None:
	viewer = member_factory(tenant, Role.VIEWER)
	before = len(_events(tenant))

	with pytest.raises(Exception, match="member.manage"):
		membership_add(actor=viewer, tenant=tenant, user=user_factory(), role="viewer")

	assert len(_events(tenant)) == before


def test_a_rolled_back_change_leaves_no_event(tenant: Tenant, owner: User) -> None:
	membership = Membership.objects.for_tenant(tenant).get()
	before = len(_events(tenant))

	def change_that_fails_after_auditing() -> None:
		with transaction.atomic():
			audit_record(actor=owner, tenant=tenant, action="membership.update", obj=membership)
			raise RuntimeError("the change failed after auditing")

	with pytest.raises(RuntimeError):
		change_that_fails_after_auditing()

	assert len(_events(tenant)) == before


@pytest.mark.django_db(transaction=True)
def test_audit_record_requires_the_change_transaction(tenant_factory: Callable[..., Tenant]) -> None:
	tenant = tenant_factory()
	membership = Membership.objects.for_tenant(tenant).get()

	with pytest.raises(AssertionError, match="inside the change's transaction"):
		audit_record(actor=None, tenant=tenant, action="x", obj=membership)


@pytest.fixture
def an_event(tenant: Tenant, owner: User) -> AuditEvent:
	tenant_update(actor=owner, tenant=tenant, name="Renamed for the record")
	return _events(tenant)[-1]


def test_events_cannot_be_altered_or_removed(tenant: Tenant, an_event: AuditEvent) -> None:
	event = an_event

	event.action = "forged"
	with pytest.raises(AuditImmutableError):
		event.save()
	with pytest.raises(AuditImmutableError):
		event.delete()
	with pytest.raises(AuditImmutableError):
		AuditEvent.objects.for_tenant(tenant).update(action="forged")
	with pytest.raises(AuditImmutableError):
		AuditEvent.objects.for_tenant(tenant).delete()
	with pytest.raises(AuditImmutableError):
		AuditEvent.objects.for_tenant(tenant).bulk_update([event], ["action"])

	assert AuditEvent.objects.for_tenant(tenant).get(pk=event.pk).action != "forged"


def test_the_database_refuses_raw_updates_on_postgresql(postgres_only: None, an_event: AuditEvent) -> None:
	event = an_event

	with (
		pytest.raises(DatabaseError, match="append-only"),
		transaction.atomic(),
		connection.cursor() as cursor,
	):
		cursor.execute("UPDATE workflows_auditevent SET action = 'forged' WHERE id = %s", [event.pk])
	with (
		pytest.raises(DatabaseError, match="append-only"),
		transaction.atomic(),
		connection.cursor() as cursor,
	):
		cursor.execute("DELETE FROM workflows_auditevent WHERE id = %s", [event.pk])


def test_api_mutations_record_request_id_and_ip(
	tenant: Tenant, owner: User, token_client: Callable[[User, Tenant], APIClient]
) -> None:
	client = token_client(owner, tenant)

	response = client.post(
		"/api/v1/tokens/",
		{"name": "deploy"},
		format="json",
		HTTP_X_REQUEST_ID="req-42",
		REMOTE_ADDR="203.0.113.9",
	)

	assert response.status_code == 201
	assert response["X-Request-ID"] == "req-42"
	event = (
		AuditEvent.objects.for_tenant(tenant)
		.filter(action="apitoken.create")
		.order_by("-occurred_at")
		.first()
	)
	assert event is not None
	assert event.request_id == "req-42"
	assert event.ip == "203.0.113.9"
	assert "key_hash" not in event.changes


def test_a_malformed_request_id_is_replaced(client: object) -> None:
	from django.test import Client

	assert isinstance(client, Client)
	response = client.get("/healthz", HTTP_X_REQUEST_ID="<script>")

	assert response["X-Request-ID"] != "<script>"
	assert len(response["X-Request-ID"]) == 32


def test_admins_list_and_filter_audit_events(
	tenant: Tenant,
	owner: User,
	member_factory: Callable[..., User],
	token_client: Callable[[User, Tenant], APIClient],
) -> None:
	member_factory(tenant, Role.VIEWER)
	client = token_client(owner, tenant)

	everything = client.get("/api/v1/audit-events/").json()
	only_tokens = client.get("/api/v1/audit-events/", {"action": "apitoken.create"}).json()
	by_actor = client.get("/api/v1/audit-events/", {"actor_id": str(owner.pk)}).json()
	bad_actor = client.get("/api/v1/audit-events/", {"actor_id": "nope"})

	assert {e["action"] for e in only_tokens["results"]} == {"apitoken.create"}
	assert len(everything["results"]) >= len(only_tokens["results"])
	assert all(e["actor_id"] == str(owner.pk) for e in by_actor["results"])
	assert bad_actor.status_code == 400
	assert bad_actor.json()["errors"][0]["pointer"] == "/actor_id"


def test_non_admins_cannot_read_the_audit_trail(
	tenant: Tenant, member_factory: Callable[..., User], token_client: Callable[[User, Tenant], APIClient]
) -> None:
	editor = member_factory(tenant, Role.EDITOR)

	response = token_client(editor, tenant).get("/api/v1/audit-events/")

	assert response.status_code == 403
	assert response.json()["detail"] == "Your role does not allow audit.view."
	assert response["Content-Type"] == "application/problem+json"


def test_there_is_no_write_endpoint_for_audit_events(
	tenant: Tenant, owner: User, token_client: Callable[[User, Tenant], APIClient]
) -> None:
	client = token_client(owner, tenant)

	assert client.post("/api/v1/audit-events/", {}, format="json").status_code == 405
	assert client.delete("/api/v1/audit-events/").status_code == 405


def test_behind_a_trusted_proxy_the_forwarded_client_is_recorded(
	tenant: Tenant, owner: User, token_client: Callable[[User, Tenant], APIClient], settings: object
) -> None:
	from django.conf import settings as django_settings

	django_settings.TRUST_PROXY_HEADERS = True
	try:
		token_client(owner, tenant).post(
			"/api/v1/tokens/",
			{"name": "proxied"},
			format="json",
			HTTP_X_FORWARDED_FOR="198.51.100.7, 10.0.0.1",
		)
	finally:
		django_settings.TRUST_PROXY_HEADERS = False

	event = (
		AuditEvent.objects.for_tenant(tenant)
		.filter(action="apitoken.create")
		.order_by("-occurred_at")
		.first()
	)
	assert event is not None
	assert event.ip == "198.51.100.7"


def test_audit_selector_filters_by_object_and_time(tenant: Tenant, owner: User) -> None:
	from datetime import timedelta

	from django.utils import timezone

	from workflows.selectors.tenancy import audit_event_list

	tenant_update(actor=owner, tenant=tenant, name="Time-filtered")
	now = timezone.now()

	matching = audit_event_list(
		actor=owner,
		tenant=tenant,
		object_type="workflows.tenant",
		object_id=str(tenant.pk),
		since=now - timedelta(minutes=1),
		until=now + timedelta(minutes=1),
	)
	future = audit_event_list(actor=owner, tenant=tenant, since=now + timedelta(minutes=1))

	assert [e.action for e in matching] == ["tenant.update"]
	assert not future.exists()
