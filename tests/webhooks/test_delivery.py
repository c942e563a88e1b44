"""Sending webhooks to a real local receiver: signatures, retries, dead letters, auto-disable, redelivery."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from django.utils import timezone

from config.env import BASE_DIR
from tests.engine.harness import linear, task
from tests.webhooks.conftest import Receiver, deliveries, fresh, make_due
from workflows import webhook_tasks
from workflows.errors import Conflict
from workflows.models import AuditEvent, Tenant, User, WebhookDelivery, WebhookSubscription, Workflow
from workflows.services.runs import run_start
from workflows.services.webhooks import (
	IssuedWebhook,
	webhook_disable,
	webhook_enable,
	webhook_ping,
	webhook_redeliver,
	webhook_rotate_secret,
)
from workflows.webhook_tasks import (
	Attempt,
	WebhookSender,
	deliver_webhook_task,
	retry_delay,
	sign,
	sweep_webhook_deliveries_task,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager")]

Settle = Callable[..., Any]


def verify_webhook_from_docs() -> Callable[..., bool]:
	"""The signature check docs/webhooks.md gives receivers, executed as written."""
	text = Path(BASE_DIR, "docs", "webhooks.md").read_text()
	block = re.search(r"```python\n(# verify_webhook:.*?)```", text, re.S)
	assert block is not None, "docs/webhooks.md lost its verify_webhook snippet"
	namespace: dict[str, Any] = {}
	exec(compile(block.group(1), "docs/webhooks.md", "exec"), namespace)  # noqa: S102 - our own docs
	return namespace["verify_webhook"]


def broker_down(*args: Any, **kwargs: Any) -> None:
	"""``apply_async`` when the broker cannot be reached: the task message is lost."""
	raise ConnectionError("broker unreachable")


def run_once(settle: Settle, owner: User, workflow: Workflow) -> None:
	settle(run_start, actor=owner, workflow=workflow)


@pytest.fixture
def flow(publish: Callable[..., Workflow]) -> Workflow:
	return publish(linear(task("work")), name="Orders", slug="orders")


def test_a_delivery_is_signed_so_the_documented_check_accepts_it_and_rejects_tampering(
	subscribe: Callable[..., IssuedWebhook],
	receiver: Receiver,
	flow: Workflow,
	owner: User,
	settle: Settle,
	tenant: Tenant,
) -> None:
	issued = subscribe(["run.succeeded"])

	run_once(settle, owner, flow)

	[got] = receiver.received
	verify = verify_webhook_from_docs()
	assert verify(issued.secret, got.headers, got.body)
	assert not verify(issued.secret, got.headers, got.body.replace(b"succeeded", b"failed"))
	assert not verify("whsec_someone-else", got.headers, got.body)
	assert not verify(issued.secret, got.headers, got.body, now=time.time() + 301)  # a replay, later
	assert got.headers["Content-Type"] == "application/json"
	assert got.headers["Webhook-Signature"] == sign(
		secret=issued.secret, timestamp=got.headers["Webhook-Timestamp"], body=got.body
	)
	body = json.loads(got.body)
	assert got.headers["Webhook-Id"] == body["id"]
	assert body["type"] == "run.succeeded"
	assert body["tenant"] == {"id": str(tenant.pk), "slug": tenant.slug}
	assert body["data"]["workflow_slug"] == "orders"
	assert body["data"]["version"] == 1
	assert body["data"]["status"] == "succeeded"
	[delivery] = deliveries(tenant)
	assert delivery.status == WebhookDelivery.Status.SUCCEEDED
	assert delivery.attempts == 1
	assert delivery.response_status == 200
	assert delivery.response_excerpt == "thanks"
	assert delivery.payload == body
	subscription = WebhookSubscription.objects.for_tenant(tenant).get()
	assert subscription.last_success_at is not None


def test_a_failed_attempt_is_retried_with_backoff_until_it_succeeds(
	subscribe: Callable[..., IssuedWebhook],
	receiver: Receiver,
	flow: Workflow,
	owner: User,
	settle: Settle,
	tenant: Tenant,
) -> None:
	subscribe(["run.succeeded"])
	receiver.answer(500, 503)

	run_once(settle, owner, flow)
	[delivery] = deliveries(tenant)
	first = fresh(delivery)
	settle(sweep_webhook_deliveries_task)  # not due yet: nothing is sent
	make_due(delivery)
	settle(sweep_webhook_deliveries_task)
	second = fresh(delivery)
	make_due(delivery)
	settle(sweep_webhook_deliveries_task)
	third = fresh(delivery)

	assert len(receiver.received) == 3
	assert len({r.headers["Webhook-Id"] for r in receiver.received}) == 1
	assert (first.status, first.attempts, first.response_status) == ("failed", 1, 500)
	assert first.error == "HTTP 500: the receiver did not answer 2xx."
	assert first.next_attempt_at is not None
	assert first.last_attempt_at is not None
	assert timedelta(seconds=7) <= first.next_attempt_at - first.last_attempt_at <= timedelta(seconds=16)
	assert first.response_excerpt.startswith("upstream exploded")
	assert len(first.response_excerpt) == 2000
	assert (second.status, second.attempts, second.response_status) == ("failed", 2, 503)
	assert (third.status, third.attempts, third.response_status) == ("succeeded", 3, 200)
	assert third.next_attempt_at is None
	assert third.finished_at is not None
	assert third.error == ""
	assert [h["status"] for h in third.history] == [500, 503, 200]
	assert WebhookSubscription.objects.for_tenant(tenant).get().consecutive_failures == 0


def test_backoff_grows_exponentially_with_jitter_up_to_the_cap(settings: Any) -> None:
	settings.WEBHOOK_RETRY_BASE_SECONDS = 10
	settings.WEBHOOK_RETRY_MAX_SECONDS = 60

	delays = {attempt: [retry_delay(attempt) for _ in range(200)] for attempt in (1, 2, 3, 10)}

	assert all(5 <= d <= 10 for d in delays[1])
	assert all(10 <= d <= 20 for d in delays[2])
	assert all(20 <= d <= 40 for d in delays[3])
	assert all(30 <= d <= 60 for d in delays[10])
	assert len(set(delays[1])) > 100  # jittered, so failures of an outage spread out


def test_a_delivery_is_dead_after_the_last_attempt(
	subscribe: Callable[..., IssuedWebhook],
	receiver: Receiver,
	flow: Workflow,
	owner: User,
	settle: Settle,
	tenant: Tenant,
	settings: Any,
) -> None:
	settings.WEBHOOK_MAX_ATTEMPTS = 3
	subscribe(["run.succeeded"])
	receiver.default = 500

	run_once(settle, owner, flow)
	[delivery] = deliveries(tenant)
	for _ in range(2):
		make_due(delivery)
		settle(sweep_webhook_deliveries_task)
	dead = fresh(delivery)
	make_due(delivery)
	swept = settle(sweep_webhook_deliveries_task)
	duplicate = settle(deliver_webhook_task, str(delivery.pk))

	assert len(receiver.received) == 3
	assert (dead.status, dead.attempts) == ("dead", 3)
	assert dead.next_attempt_at is None
	assert dead.finished_at is not None
	assert [h["attempt"] for h in dead.history] == [1, 2, 3]
	assert (swept, duplicate) == (0, None)  # final: neither the sweeper nor a late message sends it
	assert len(receiver.received) == 3


def test_repeated_failures_disable_the_subscription_with_a_notice_and_an_audit_event(
	subscribe: Callable[..., IssuedWebhook],
	receiver: Receiver,
	flow: Workflow,
	owner: User,
	settle: Settle,
	tenant: Tenant,
	settings: Any,
	api: Callable[..., Any],
) -> None:
	settings.WEBHOOK_MAX_ATTEMPTS = 2
	settings.WEBHOOK_DISABLE_AFTER_FAILURES = 3
	settings.WEBHOOK_DISABLE_AFTER_SECONDS = 0
	subscription = subscribe(["run.succeeded"]).subscription
	receiver.default = 502

	run_once(settle, owner, flow)
	run_once(settle, owner, flow)  # two failed attempts
	first, second = deliveries(tenant)
	make_due(first)
	settle(sweep_webhook_deliveries_task)  # the third: disabled
	make_due(second)
	settle(sweep_webhook_deliveries_task)  # not sent any more
	run_once(settle, owner, flow)  # no delivery for a disabled subscription
	shown = api("get", f"/api/v1/webhooks/{subscription.pk}/").json()

	assert len(receiver.received) == 3
	assert shown["active"] is False
	assert shown["disabled_at"] is not None
	assert shown["consecutive_failures"] == 3
	assert shown["disabled_reason"].startswith("Disabled automatically after 3 failed delivery attempts")
	assert "HTTP 502" in shown["disabled_reason"]
	assert fresh(first).status == "dead"
	assert (fresh(second).status, fresh(second).error) == (
		"dead",
		"Not sent: the subscription was disabled or deleted.",
	)
	assert len(deliveries(tenant)) == 2
	audit = AuditEvent.objects.for_tenant(tenant).get(action="webhook.auto_disable")
	assert (audit.actor_label, audit.object_id) == ("system", str(subscription.pk))
	assert audit.changes["active"] == {"before": True, "after": False}

	enabled = api("post", f"/api/v1/webhooks/{subscription.pk}/enable/").json()
	receiver.default = 200
	run_once(settle, owner, flow)

	assert (enabled["active"], enabled["consecutive_failures"], enabled["disabled_reason"]) == (True, 0, "")
	assert fresh(deliveries(tenant)[-1]).status == "succeeded"


def test_failures_do_not_disable_before_they_have_lasted_long_enough(
	subscribe: Callable[..., IssuedWebhook],
	receiver: Receiver,
	flow: Workflow,
	owner: User,
	settle: Settle,
	tenant: Tenant,
	settings: Any,
) -> None:
	settings.WEBHOOK_DISABLE_AFTER_FAILURES = 2
	settings.WEBHOOK_DISABLE_AFTER_SECONDS = 3600
	subscribe(["run.succeeded"])
	receiver.default = 500

	for _ in range(3):
		run_once(settle, owner, flow)
	subscription = WebhookSubscription.objects.for_tenant(tenant).get()

	assert subscription.active
	assert subscription.consecutive_failures == 3
	assert subscription.failing_since is not None


def test_a_dead_delivery_is_redelivered_by_hand_as_a_new_delivery(
	subscribe: Callable[..., IssuedWebhook],
	receiver: Receiver,
	flow: Workflow,
	owner: User,
	settle: Settle,
	tenant: Tenant,
	settings: Any,
	api: Callable[..., Any],
) -> None:
	settings.WEBHOOK_MAX_ATTEMPTS = 1
	subscribe(["run.succeeded"])
	receiver.answer(500)
	run_once(settle, owner, flow)
	[original] = deliveries(tenant)

	response = api("post", f"/api/v1/webhook-deliveries/{original.pk}/redeliver/")

	assert response.status_code == 202, response.content
	again = WebhookDelivery.objects.for_tenant(tenant).get(pk=response.json()["id"])
	assert again.redelivery_of_id == original.pk
	assert (again.status, again.attempts, again.response_status) == ("succeeded", 1, 200)
	assert again.payload == original.payload
	assert (fresh(original).status, fresh(original).response_status) == ("dead", 500)
	assert receiver.received[0].headers["Webhook-Id"] == receiver.received[1].headers["Webhook-Id"]
	assert receiver.received[0].body == receiver.received[1].body
	assert AuditEvent.objects.for_tenant(tenant).filter(action="webhook.redeliver").count() == 1


def test_redelivery_needs_a_finished_delivery_and_an_active_subscription(
	subscribe: Callable[..., IssuedWebhook],
	receiver: Receiver,
	flow: Workflow,
	owner: User,
	settle: Settle,
	tenant: Tenant,
) -> None:
	subscription = subscribe(["run.succeeded"]).subscription
	receiver.answer(500)
	run_once(settle, owner, flow)
	[retrying] = deliveries(tenant)

	with pytest.raises(Conflict, match="still being retried"):
		webhook_redeliver(actor=owner, delivery=fresh(retrying))
	make_due(retrying)
	settle(sweep_webhook_deliveries_task)
	webhook_disable(actor=owner, subscription=subscription)
	with pytest.raises(Conflict, match="enable it first"):
		webhook_redeliver(actor=owner, delivery=fresh(retrying))


def test_a_ping_is_sent_once_even_when_disabled_and_never_counts_as_a_failure(
	subscribe: Callable[..., IssuedWebhook], receiver: Receiver, owner: User, settle: Settle, tenant: Tenant
) -> None:
	issued = subscribe(["run.failed"])
	webhook_disable(actor=owner, subscription=issued.subscription)
	receiver.answer(404)

	failed = settle(webhook_ping, actor=owner, subscription=issued.subscription)
	passed = settle(webhook_ping, actor=owner, subscription=issued.subscription)

	assert (fresh(failed).status, fresh(failed).attempts, fresh(failed).response_status) == ("dead", 1, 404)
	assert fresh(passed).status == "succeeded"
	body = json.loads(receiver.received[1].body)
	assert body["type"] == "webhook.ping"
	assert body["data"]["subscription_id"] == str(issued.subscription.pk)
	assert verify_webhook_from_docs()(issued.secret, receiver.received[1].headers, receiver.received[1].body)
	subscription = WebhookSubscription.objects.for_tenant(tenant).get()
	assert (subscription.active, subscription.consecutive_failures) == (False, 0)


def test_after_rotation_deliveries_are_signed_with_the_new_secret(
	subscribe: Callable[..., IssuedWebhook], receiver: Receiver, owner: User, settle: Settle
) -> None:
	issued = subscribe(["*"])
	rotated = webhook_rotate_secret(actor=owner, subscription=issued.subscription)

	settle(webhook_ping, actor=owner, subscription=issued.subscription)

	verify = verify_webhook_from_docs()
	[got] = receiver.received
	assert rotated.secret != issued.secret
	assert verify(rotated.secret, got.headers, got.body)
	assert not verify(issued.secret, got.headers, got.body)


def test_private_addresses_are_refused_when_the_network_policy_forbids_them(
	subscribe: Callable[..., IssuedWebhook],
	receiver: Receiver,
	owner: User,
	settle: Settle,
	tenant: Tenant,
	settings: Any,
) -> None:
	issued = subscribe(["*"])  # allowed while the operator allowed private networks
	settings.CONNECTOR_ALLOW_PRIVATE_NETWORKS = False

	delivery = settle(webhook_ping, actor=owner, subscription=issued.subscription)

	refused = fresh(delivery)
	assert receiver.received == []
	assert refused.status == "dead"
	assert refused.response_status is None
	assert "refused to connect to 127.0.0.1" in refused.error
	assert "loopback" in refused.error


def test_a_slow_or_absent_receiver_is_a_failed_attempt_with_a_clear_error(
	subscribe: Callable[..., IssuedWebhook],
	receiver: Receiver,
	flow: Workflow,
	owner: User,
	settle: Settle,
	tenant: Tenant,
	settings: Any,
) -> None:
	settings.WEBHOOK_TIMEOUT_SECONDS = 0.3
	receiver.delay = 1.0
	subscribe(["run.succeeded"])
	subscribe(["run.succeeded"], url="http://127.0.0.1:9/nobody-listens")

	run_once(settle, owner, flow)

	slow, absent = (fresh(d) for d in deliveries(tenant))
	assert (slow.status, slow.response_status) == ("failed", None)
	assert slow.error == "No response within 0.3 s."
	assert absent.status == "failed"
	assert absent.error.startswith("Connection failed")


def test_the_sweeper_recovers_deliveries_whose_message_was_lost(
	subscribe: Callable[..., IssuedWebhook],
	receiver: Receiver,
	flow: Workflow,
	owner: User,
	settle: Settle,
	tenant: Tenant,
	settings: Any,
	monkeypatch: pytest.MonkeyPatch,
	caplog: pytest.LogCaptureFixture,
) -> None:
	subscribe(["run.started", "run.succeeded"])

	with monkeypatch.context() as patched:
		patched.setattr(webhook_tasks, "deliver_webhook_task", SimpleNamespace(apply_async=broker_down))
		run_once(settle, owner, flow)
	lost = deliveries(tenant)
	early = settle(sweep_webhook_deliveries_task)
	settings.WEBHOOK_REDISPATCH_SECONDS = 0
	swept = settle(sweep_webhook_deliveries_task)

	assert caplog.text.count("could not send 1 webhook delivery task(s); the sweeper will") == 2
	assert [d.status for d in lost] == ["pending", "pending"]
	assert early == 0  # just dispatched: its message may still be on the way
	assert swept == 2
	assert [fresh(d).status for d in lost] == ["succeeded", "succeeded"]
	assert sorted(json.loads(r.body)["type"] for r in receiver.received) == ["run.started", "run.succeeded"]
	assert settle(sweep_webhook_deliveries_task) == 0


def test_an_attempt_cut_short_by_a_crash_is_made_again_once_its_lease_runs_out(
	subscribe: Callable[..., IssuedWebhook], receiver: Receiver, owner: User, tenant: Tenant, settle: Settle
) -> None:
	issued = subscribe(["*"])
	delivery = webhook_ping(actor=owner, subscription=issued.subscription)  # not dispatched: no commit
	# A worker claimed it and died before recording anything.
	WebhookDelivery.objects.for_tenant(tenant).filter(pk=delivery.pk).update(
		attempts=1, next_attempt_at=timezone.now() + timedelta(seconds=40)
	)

	while_leased = settle(deliver_webhook_task, str(delivery.pk))
	make_due(delivery)
	after_lease = settle(deliver_webhook_task, str(delivery.pk))

	assert while_leased is None
	assert after_lease == "succeeded"
	assert fresh(delivery).attempts == 2
	assert len(receiver.received) == 1


def test_a_late_outcome_does_not_overwrite_a_newer_attempt(
	subscribe: Callable[..., IssuedWebhook], receiver: Receiver, owner: User, tenant: Tenant
) -> None:
	issued = subscribe(["*"])
	delivery = webhook_ping(actor=owner, subscription=issued.subscription)
	stale = fresh(delivery)
	WebhookDelivery.objects.for_tenant(tenant).filter(pk=delivery.pk).update(attempts=2)
	sender = WebhookSender(str(delivery.pk))

	sender.record(stale, Attempt(200), now=timezone.now(), retry=True, counts=True)

	assert sender.status is None
	assert fresh(delivery).status == "pending"


def test_deliveries_of_deleted_subscriptions_or_deactivated_tenants_are_not_sent(
	subscribe: Callable[..., IssuedWebhook], receiver: Receiver, owner: User, tenant: Tenant, settle: Settle
) -> None:
	from workflows.services.webhooks import webhook_delete

	gone = subscribe(["*"])
	kept = subscribe(["*"])
	orphan = webhook_ping(actor=owner, subscription=gone.subscription)
	webhook_delete(actor=owner, subscription=gone.subscription)
	inactive = webhook_ping(actor=owner, subscription=kept.subscription)

	settle(deliver_webhook_task, str(orphan.pk))
	Tenant.objects.filter(pk=tenant.pk).update(is_active=False)
	settle(deliver_webhook_task, str(inactive.pk))

	assert receiver.received == []
	assert fresh(orphan).error == "Not sent: the subscription was disabled or deleted."
	assert fresh(inactive).error == "Not sent: the organization is deactivated."


def test_a_secret_that_cannot_be_decrypted_is_a_failed_attempt(
	subscribe: Callable[..., IssuedWebhook], receiver: Receiver, owner: User, settle: Settle
) -> None:
	issued = subscribe(["*"])
	WebhookSubscription.objects.for_tenant(issued.subscription.tenant).update(ciphertext="not-a-token")

	delivery = settle(webhook_ping, actor=owner, subscription=issued.subscription)

	assert receiver.received == []
	assert fresh(delivery).error.startswith("Not sent: A stored secret cannot be decrypted")


def test_enabling_and_disabling_twice_changes_nothing(
	subscribe: Callable[..., IssuedWebhook], owner: User, tenant: Tenant
) -> None:
	subscription = subscribe(["*"]).subscription

	webhook_enable(actor=owner, subscription=subscription)
	webhook_disable(actor=owner, subscription=subscription)
	webhook_disable(actor=owner, subscription=subscription)

	actions = list(
		AuditEvent.objects.for_tenant(tenant)
		.filter(object_id=str(subscription.pk))
		.order_by("occurred_at")
		.values_list("action", flat=True)
	)
	assert actions == ["webhook.create", "webhook.disable"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("postgres_only")
def test_two_sweepers_never_send_the_same_delivery(
	subscribe: Callable[..., IssuedWebhook],
	receiver: Receiver,
	owner: User,
	tenant: Tenant,
	monkeypatch: pytest.MonkeyPatch,
) -> None:
	import threading

	from django.db import connection, transaction

	issued = subscribe(["*"])
	with monkeypatch.context() as patched:  # the messages are lost
		patched.setattr(webhook_tasks, "deliver_webhook_task", SimpleNamespace(apply_async=broker_down))
		held = webhook_ping(actor=owner, subscription=issued.subscription)
		free = webhook_ping(actor=owner, subscription=issued.subscription)
	for delivery in (held, free):
		make_due(delivery)
	locked, release = threading.Event(), threading.Event()

	def other_sweeper() -> None:
		try:
			with transaction.atomic():
				list(WebhookDelivery.objects.for_tenant(tenant).select_for_update().filter(pk=held.pk))
				locked.set()
				release.wait(10)
		finally:
			connection.close()

	thread = threading.Thread(target=other_sweeper)
	thread.start()
	assert locked.wait(10)
	try:
		swept = sweep_webhook_deliveries_task()
	finally:
		release.set()
		thread.join()

	assert swept == 1
	assert fresh(free).status == "succeeded"
	assert fresh(held).status == "pending"
	assert len(receiver.received) == 1


def test_the_sweeper_deletes_finished_deliveries_past_their_retention(
	subscribe: Callable[..., IssuedWebhook], receiver: Receiver, owner: User, tenant: Tenant, settle: Settle
) -> None:
	issued = subscribe(["*"])
	old, recent = (settle(webhook_ping, actor=owner, subscription=issued.subscription) for _ in range(2))
	waiting = webhook_ping(actor=owner, subscription=issued.subscription)  # not sent: no commit
	long_ago = timezone.now() - timedelta(days=31)
	WebhookDelivery.objects.for_tenant(tenant).filter(pk__in=[old.pk, waiting.pk]).update(created_at=long_ago)
	WebhookDelivery.objects.for_tenant(tenant).filter(pk=old.pk).update(finished_at=long_ago)

	settle(sweep_webhook_deliveries_task)

	kept = {d.pk for d in deliveries(tenant)}
	assert kept == {recent.pk, waiting.pk}


def test_a_long_failure_still_gives_a_complete_notice(
	subscribe: Callable[..., IssuedWebhook],
	receiver: Receiver,
	flow: Workflow,
	owner: User,
	settle: Settle,
	tenant: Tenant,
	settings: Any,
) -> None:
	settings.WEBHOOK_DISABLE_AFTER_FAILURES = 1
	settings.WEBHOOK_DISABLE_AFTER_SECONDS = 0
	subscribe(["run.succeeded"])
	settings.CONNECTOR_ALLOW_PRIVATE_NETWORKS = False  # the refusal explains itself at length

	run_once(settle, owner, flow)

	subscription = WebhookSubscription.objects.for_tenant(tenant).get()
	[delivery] = deliveries(tenant)
	assert len(delivery.error) > 300
	assert not subscription.active
	assert len(subscription.disabled_reason) <= 500
	assert "refused to connect to 127.0.0.1" in subscription.disabled_reason
	assert subscription.disabled_reason.endswith("Fix the endpoint, then enable the subscription.")
