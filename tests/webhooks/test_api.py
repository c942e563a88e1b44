"""The webhooks REST API: managing subscriptions, the secret shown once, roles, tenants, the log."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.webhooks.conftest import Receiver, deliveries
from workflows.models import AuditEvent, Tenant, User, WebhookDelivery, WebhookSubscription
from workflows.services.webhooks import IssuedWebhook, manage, webhook_ping

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager")]

PROBLEM = "application/problem+json"
Api = Callable[..., Any]
HOOK = "https://hooks.example.com/apg"


def problem(response: Any, status: int) -> dict[str, Any]:
	assert response.status_code == status, response.content
	assert response["Content-Type"] == PROBLEM
	return response.json()


def create(api: Api, role: str = "owner", **fields: Any) -> Any:
	return api("post", "/api/v1/webhooks/", {"url": HOOK, "event_types": ["run.*"]} | fields, role=role)


def test_the_secret_is_shown_once_at_creation_and_once_per_rotation(api: Api, tenant: Tenant) -> None:
	created = create(api, description="Pager")
	body = created.json()
	webhook_id = body["id"]

	listed = api("get", "/api/v1/webhooks/")
	shown = api("get", f"/api/v1/webhooks/{webhook_id}/")
	rotated = api("post", f"/api/v1/webhooks/{webhook_id}/rotate-secret/")
	shown_again = api("get", f"/api/v1/webhooks/{webhook_id}/")

	assert created.status_code == 201, created.content
	assert body["secret"].startswith("whsec_")
	assert len(body["secret"]) > 40
	assert (body["url"], body["event_types"], body["description"], body["active"]) == (
		HOOK,
		["run.*"],
		"Pager",
		True,
	)
	assert rotated.status_code == 200
	assert rotated.json()["secret"].startswith("whsec_")
	assert rotated.json()["secret"] != body["secret"]
	for response in (listed, shown, shown_again):
		assert response.status_code == 200
		assert "secret" not in response.content.decode()
	stored = WebhookSubscription.objects.for_tenant(tenant).get()
	assert body["secret"] not in stored.ciphertext
	audit = json.dumps(list(AuditEvent.objects.for_tenant(tenant).values_list("changes", flat=True)))
	assert body["secret"] not in audit
	assert rotated.json()["secret"] not in audit
	actions = set(AuditEvent.objects.for_tenant(tenant).values_list("action", flat=True))
	assert {"webhook.create", "webhook.rotate_secret"} <= actions


@pytest.mark.parametrize("role", ["viewer", "editor", "operator"])
def test_members_below_admin_cannot_manage_or_read_webhooks(
	api: Api, role: str, subscribe: Callable[..., IssuedWebhook], owner: User
) -> None:
	subscription = subscribe(["*"]).subscription
	delivery = webhook_ping(actor=owner, subscription=subscription)
	base = f"/api/v1/webhooks/{subscription.pk}/"
	attempts = [
		("get", "/api/v1/webhooks/"),
		("post", "/api/v1/webhooks/"),
		("get", base),
		("patch", base),
		("delete", base),
		("post", base + "rotate-secret/"),
		("post", base + "enable/"),
		("post", base + "disable/"),
		("post", base + "ping/"),
		("get", base + "deliveries/"),
		("get", f"/api/v1/webhook-deliveries/{delivery.pk}/"),
		("post", f"/api/v1/webhook-deliveries/{delivery.pk}/redeliver/"),
	]

	for method, url in attempts:
		data = {"url": HOOK, "event_types": ["*"]} if method == "post" and url.endswith("webhooks/") else None
		response = api(method, url, data, role=role)
		assert problem(response, 403)["detail"] == "Your role does not allow webhook.manage.", url
	assert WebhookSubscription.objects.for_tenant(subscription.tenant).get().active


def test_admins_manage_subscriptions_end_to_end(api: Api, receiver: Receiver, tenant: Tenant) -> None:
	webhook_id = create(api, role="admin", url=receiver.url).json()["id"]
	base = f"/api/v1/webhooks/{webhook_id}/"

	patched = api(
		"patch", base, {"event_types": ["approval.*", "run.failed"], "description": "ops"}, role="admin"
	)
	disabled = api("post", base + "disable/", role="admin")
	pinged = api("post", base + "ping/", role="admin")
	enabled = api("post", base + "enable/", role="admin")
	deleted = api("delete", base, role="admin")

	assert patched.status_code == 200, patched.content
	assert (patched.json()["event_types"], patched.json()["description"]) == (
		["approval.*", "run.failed"],
		"ops",
	)
	assert disabled.json()["active"] is False
	assert disabled.json()["disabled_reason"].startswith("Disabled by ")
	assert pinged.status_code == 202
	assert pinged.json()["event_type"] == "webhook.ping"
	assert json.loads(receiver.received[0].body)["type"] == "webhook.ping"
	assert enabled.json()["active"] is True
	assert deleted.status_code == 204
	assert api("get", base, role="admin").status_code == 404
	assert api("get", "/api/v1/webhooks/", role="admin").json() == []
	actions = set(AuditEvent.objects.for_tenant(tenant).values_list("action", flat=True))
	assert {
		"webhook.update",
		"webhook.disable",
		"webhook.ping",
		"webhook.enable",
		"webhook.delete",
	} <= actions


def test_another_tenants_webhooks_and_deliveries_are_not_found(
	api: Api, tenant_factory: Callable[..., Tenant], token_client: Callable[[User, Tenant], APIClient]
) -> None:
	from workflows.context import tenant_scope
	from workflows.models import Membership
	from workflows.services.webhooks import webhook_create

	other = tenant_factory()
	other_owner = Membership.objects.for_tenant(other).get().user
	with tenant_scope(other):
		theirs = webhook_create(actor=other_owner, tenant=other, url=HOOK, event_types=["*"]).subscription
		delivery = webhook_ping(actor=other_owner, subscription=theirs)
	base = f"/api/v1/webhooks/{theirs.pk}/"

	for method, url in [
		("get", base),
		("patch", base),
		("delete", base),
		("post", base + "rotate-secret/"),
		("post", base + "enable/"),
		("post", base + "disable/"),
		("post", base + "ping/"),
		("get", base + "deliveries/"),
		("get", f"/api/v1/webhook-deliveries/{delivery.pk}/"),
		("post", f"/api/v1/webhook-deliveries/{delivery.pk}/redeliver/"),
	]:
		assert problem(api(method, url), 404)["detail"] == "Not found.", url
	assert str(theirs.pk) not in api("get", "/api/v1/webhooks/").content.decode()
	with tenant_scope(other):
		assert WebhookDelivery.objects.filter(subscription=theirs).count() == 1


@pytest.mark.parametrize(
	("fields", "pointer", "says"),
	[
		({"url": "ftp://example.com/x"}, "/url", "not an absolute http:// or https:// URL"),
		({"url": "https://"}, "/url", "not an absolute http:// or https:// URL"),
		({"url": "https://example.com:port/x"}, "/url", "not an absolute http:// or https:// URL"),
		({"url": "https://exa mple.com/"}, "/url", "without spaces"),
		({"url": "http://10.0.0.5/hook"}, "/url", "10.0.0.5 is a private address"),
		({"url": "http://localhost:8000/hook"}, "/url", "localhost is a loopback address"),
		({"url": "http://[::1]/hook"}, "/url", "::1 is a loopback address"),
		({"url": "http://0.0.0.0/hook"}, "/url", "0.0.0.0 is an unspecified address"),
		({"event_types": ["run.*", "step.failed"]}, "/event_types/1", "'step.failed' is not an event type"),
		({"event_types": ["runs.*"]}, "/event_types/0", "not an event type"),
		({"event_types": []}, "/event_types", ""),
		({"event_types": "run.failed"}, "/event_types", ""),
		({"description": "x" * 501}, "/description", ""),
		({"secret": "mine"}, "/secret", "Unknown field"),
	],
)
def test_invalid_subscriptions_are_refused_with_a_pointer_and_a_hint(
	api: Api, fields: dict[str, Any], pointer: str, says: str, tenant: Tenant
) -> None:
	response = create(api, **fields)

	body = problem(response, 400)
	errors = {e["pointer"]: e for e in body["errors"]}
	assert pointer in errors, body
	assert says in errors[pointer]["message"]
	assert not WebhookSubscription.objects.for_tenant(tenant).exists()


def test_an_unknown_event_type_lists_the_known_ones(api: Api) -> None:
	response = create(api, event_types=["run.exploded"])

	[error] = problem(response, 400)["errors"]
	assert "run.failed" in error["hint"]
	assert "approval.*" in error["hint"]


def test_update_validates_like_create_and_a_no_op_changes_nothing(
	api: Api, subscribe: Callable[..., IssuedWebhook], tenant: Tenant
) -> None:
	subscription = subscribe(["run.*"], url=HOOK).subscription
	base = f"/api/v1/webhooks/{subscription.pk}/"

	bad = api("patch", base, {"url": "mailto:me@example.com", "event_types": ["nope"]})
	same = api("patch", base, {"url": HOOK})

	assert {e["pointer"] for e in problem(bad, 400)["errors"]} == {"/url", "/event_types/0"}
	assert same.status_code == 200
	assert not AuditEvent.objects.for_tenant(tenant).filter(action="webhook.update").exists()


def test_duplicate_event_types_are_kept_once(api: Api) -> None:
	body = create(api, event_types=["run.failed", " run.failed", "*"]).json()

	assert body["event_types"] == ["run.failed", "*"]


def test_a_tenant_has_a_bounded_number_of_subscriptions(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
	monkeypatch.setattr(manage, "MAX_SUBSCRIPTIONS", 2)

	statuses = [create(api).status_code for _ in range(2)]
	third = create(api)

	assert statuses == [201, 201]
	assert "2 webhook subscriptions, the most allowed" in problem(third, 409)["detail"]


def test_private_urls_are_accepted_when_the_operator_allows_private_networks(api: Api, settings: Any) -> None:
	settings.CONNECTOR_ALLOW_PRIVATE_NETWORKS = True

	assert create(api, url="http://10.0.0.5/hook").status_code == 201


def test_the_delivery_log_pages_newest_first_and_filters_by_status(
	api: Api,
	subscribe: Callable[..., IssuedWebhook],
	receiver: Receiver,
	owner: User,
	settle: Callable[..., Any],
) -> None:
	subscription = subscribe(["*"]).subscription
	receiver.answer(500)
	for _ in range(3):
		settle(webhook_ping, actor=owner, subscription=subscription)
	base = f"/api/v1/webhooks/{subscription.pk}/deliveries/"

	first = api("get", base, {"limit": 2}).json()
	rest = api("get", first["next"]).json()
	dead = api("get", base, {"status": "dead"}).json()
	bad = api("get", base, {"status": "lost"})

	ids = [d["id"] for d in first["results"] + rest["results"]]
	made = [str(d.pk) for d in reversed(deliveries(subscription.tenant))]
	assert ids == made
	assert rest["next"] is None
	assert [d["response_status"] for d in dead["results"]] == [500]
	assert "'lost' is not a delivery status; use one of: pending, failed, succeeded, dead." in json.dumps(
		problem(bad, 400)
	)


def test_a_delivery_shows_what_was_sent_and_what_came_back(
	api: Api,
	subscribe: Callable[..., IssuedWebhook],
	receiver: Receiver,
	owner: User,
	settle: Callable[..., Any],
) -> None:
	subscription = subscribe(["*"]).subscription
	delivery = settle(webhook_ping, actor=owner, subscription=subscription)

	shown = api("get", f"/api/v1/webhook-deliveries/{delivery.pk}/").json()

	[got] = receiver.received
	assert shown["status"] == "succeeded"
	assert shown["request"]["body"] == json.loads(got.body)
	assert shown["request"]["headers"]["Webhook-Signature"] == got.headers["Webhook-Signature"]
	assert shown["request"]["headers"]["Webhook-Id"] == str(delivery.event_id)
	assert shown["response"]["status"] == 200
	assert shown["response"]["body_excerpt"] == "thanks"
	assert shown["response"]["duration_ms"] is not None
	assert [(h["attempt"], h["status"], h["error"]) for h in shown["history"]] == [(1, 200, "")]


def test_redelivering_a_retrying_delivery_is_a_conflict(
	api: Api, subscribe: Callable[..., IssuedWebhook], receiver: Receiver, owner: User, tenant: Tenant
) -> None:
	subscription = subscribe(["*"]).subscription
	delivery = webhook_ping(actor=owner, subscription=subscription)  # still pending

	response = api("post", f"/api/v1/webhook-deliveries/{delivery.pk}/redeliver/")

	assert "still being retried" in problem(response, 409)["detail"]
	assert len(deliveries(tenant)) == 1


def test_malformed_ids_are_not_found(api: Api) -> None:
	from uuid import uuid4

	assert api("get", f"/api/v1/webhooks/{uuid4()}/").status_code == 404
	assert api("get", f"/api/v1/webhook-deliveries/{uuid4()}/").status_code == 404
	assert api("get", "/api/v1/webhooks/not-a-uuid/").status_code == 404
