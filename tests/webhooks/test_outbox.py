"""The engine's outbox: which events become deliveries, exactly once, and what it costs with none."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache

from config.env import BASE_DIR
from tests.api_runs.conftest import approval_flow
from tests.engine.harness import linear, node, task
from tests.webhooks.conftest import Receiver, deliveries
from workflows.context import tenant_scope
from workflows.engine.status import RunStatus
from workflows.models import Approval, Run, RunEvent, Tenant, User, WebhookSubscription, Workflow
from workflows.models.webhooks import WEBHOOK_EVENT_TYPES
from workflows.services.runs import approval_decide, run_start
from workflows.services.webhooks import (
	MAX_VALUE_BYTES,
	IssuedWebhook,
	outbox,
	record_deliveries,
	webhook_delete,
	webhook_update,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager")]

Settle = Callable[..., Any]


def run_events(run: Run) -> list[RunEvent]:
	return list(RunEvent.objects.for_tenant(run.tenant).filter(run=run).order_by("seq"))


def test_every_run_and_approval_event_the_engine_emits_can_be_subscribed_to() -> None:
	source = Path(BASE_DIR, "workflows", "engine", "core", "work.py").read_text()
	literal = set(re.findall(r'emit\(\s*"((?:run|approval)\.[a-z_]+)"', source))
	# finish() and set_status() emit f"run.{status.value}" for every status but pending.
	by_status = {f"run.{status.value}" for status in RunStatus if status != RunStatus.PENDING}

	assert "run.started" in literal
	assert "approval.decided" in literal
	assert literal | by_status <= set(WEBHOOK_EVENT_TYPES)


def test_a_run_produces_exactly_one_delivery_per_subscribed_event(
	subscribe: Callable[..., IssuedWebhook],
	receiver: Receiver,
	publish: Callable[..., Workflow],
	owner: User,
	settle: Settle,
	tenant: Tenant,
) -> None:
	everything = subscribe(["*"]).subscription
	runs_only = subscribe(["run.*"]).subscription
	outcome = subscribe(["run.succeeded", "run.failed"]).subscription
	workflow = publish(linear(task("a"), task("b")))

	run = settle(run_start, actor=owner, workflow=workflow)

	exposed = [e for e in run_events(run) if e.type in WEBHOOK_EVENT_TYPES]
	made = deliveries(tenant)
	per_subscription = Counter((d.subscription_id, d.event_id) for d in made)
	assert {e.type for e in exposed} >= {"run.started", "run.succeeded"}
	assert not any(d.event_type.startswith("step.") for d in made)
	assert set(per_subscription.values()) == {1}
	assert {d.event_id for d in made if d.subscription_id == everything.pk} == {e.pk for e in exposed}
	assert {d.event_id for d in made if d.subscription_id == runs_only.pk} == {e.pk for e in exposed}
	assert [d.event_type for d in made if d.subscription_id == outcome.pk] == ["run.succeeded"]
	assert all(d.status == "succeeded" and d.run_id == run.pk for d in made)
	assert len(receiver.received) == len(made)
	sent = Counter(json.loads(r.body)["id"] for r in receiver.received)
	assert sent == Counter(str(d.event_id) for d in made)


def test_approval_events_carry_the_approval_and_terminal_events_the_outcome(
	subscribe: Callable[..., IssuedWebhook],
	receiver: Receiver,
	publish: Callable[..., Workflow],
	owner: User,
	settle: Settle,
	tenant: Tenant,
) -> None:
	subscribe(["approval.*", "run.succeeded"])
	subscribe(["run.failed"])  # filtered out: this run does not fail
	workflow = publish(approval_flow(), name="Review")
	run = settle(run_start, actor=owner, workflow=workflow)
	with tenant_scope(tenant):
		approval = Approval.objects.get(run=run)
	settle(approval_decide, actor=owner, approval=approval, decision="approved", data={"budget": 5})

	bodies = [json.loads(r.body) for r in receiver.received]
	by_type = {b["type"]: b for b in bodies}
	assert sorted(by_type) == ["approval.decided", "approval.requested", "run.succeeded"]
	assert len(bodies) == 3
	requested = by_type["approval.requested"]["data"]
	assert requested["approval"] == {
		"key": "root:review",
		"node": "review",
		"assignees": [],
		"role": "operator",
	}
	assert requested["status"] == "waiting"
	assert requested["run_id"] == str(run.pk)
	decided = by_type["approval.decided"]["data"]["approval"]
	assert (decided["decision"], decided["by"]) == ("approved", owner.get_username())
	succeeded = by_type["run.succeeded"]["data"]
	assert succeeded["error"] is None
	assert "output" in succeeded
	assert "output" not in requested
	seqs = [b["data"]["seq"] for b in sorted(bodies, key=lambda b: b["data"]["seq"])]
	assert seqs == sorted(set(seqs))


def test_a_large_output_is_left_out_of_the_payload(
	subscribe: Callable[..., IssuedWebhook], publish: Callable[..., Workflow], owner: User, tenant: Tenant
) -> None:
	subscribe(["run.succeeded"], url="https://example.com/hook")
	workflow = publish(linear(task("a")))
	run = run_start(actor=owner, workflow=workflow)  # pending: nothing was sent
	run = Run.objects.for_tenant(tenant).select_related("tenant").get(pk=run.pk)
	big = {"rows": ["x" * 1000] * (MAX_VALUE_BYTES // 1000 + 1)}
	event = RunEvent(
		tenant_id=tenant.pk, run_id=run.pk, seq=99, type="run.succeeded", data={"output": big, "error": None}
	)

	[delivery_id] = record_deliveries(run=run, events=[event])

	[delivery] = deliveries(tenant, pk=delivery_id)
	output = delivery.payload["data"]["output"]
	assert output["omitted"] is True
	assert output["bytes"] > MAX_VALUE_BYTES
	assert delivery.payload["data"]["error"] is None
	assert len(json.dumps(delivery.payload)) < 2000


def test_with_no_subscription_a_transition_reads_nothing_once_the_cache_is_warm(
	publish: Callable[..., Workflow],
	owner: User,
	tenant: Tenant,
	settings: Any,
	django_assert_num_queries: Callable[..., Any],
) -> None:
	settings.WEBHOOK_SUBSCRIPTION_CACHE_SECONDS = 60
	run = run_start(actor=owner, workflow=publish(linear(task("a"))))
	run = Run.objects.for_tenant(tenant).select_related("tenant").get(pk=run.pk)
	event = RunEvent(tenant_id=tenant.pk, run_id=run.pk, seq=1, type="run.started", data={})
	outbox._listening.pop(tenant.pk, None)

	with django_assert_num_queries(1):  # the first transition reads the tenant's subscriptions
		assert record_deliveries(run=run, events=[event]) == []
	with django_assert_num_queries(0):
		assert record_deliveries(run=run, events=[event]) == []
		assert record_deliveries(run=run, events=[]) == []
	settings.WEBHOOK_SUBSCRIPTION_CACHE_SECONDS = 0  # expired, but the version did not change
	with django_assert_num_queries(0):
		assert record_deliveries(run=run, events=[event]) == []


def test_other_processes_see_a_change_when_the_version_counter_moves(
	publish: Callable[..., Workflow], owner: User, tenant: Tenant, settings: Any
) -> None:
	settings.WEBHOOK_SUBSCRIPTION_CACHE_SECONDS = 0
	run = run_start(actor=owner, workflow=publish(linear(task("a"))))
	run = Run.objects.for_tenant(tenant).select_related("tenant").get(pk=run.pk)
	event = RunEvent(tenant_id=tenant.pk, run_id=run.pk, seq=1, type="run.started", data={})
	assert record_deliveries(run=run, events=[event]) == []
	# Another process subscribes: its row is committed, its version bump not seen yet here.
	with tenant_scope(tenant):
		WebhookSubscription.objects.create(
			tenant=tenant, url="https://example.com/hook", event_types=["*"], ciphertext="x"
		)

	before_bump = record_deliveries(run=run, events=[event])
	cache.set(outbox._version_key(tenant.pk), "bumped by another process", timeout=None)
	after_bump = record_deliveries(run=run, events=[event])

	assert before_bump == []
	assert len(after_bump) == 1


def test_changes_made_through_the_services_are_seen_at_once(
	subscribe: Callable[..., IssuedWebhook],
	publish: Callable[..., Workflow],
	owner: User,
	tenant: Tenant,
	settings: Any,
) -> None:
	settings.WEBHOOK_SUBSCRIPTION_CACHE_SECONDS = 3600
	run = run_start(actor=owner, workflow=publish(linear(task("a"))))
	run = Run.objects.for_tenant(tenant).select_related("tenant").get(pk=run.pk)
	started = RunEvent(tenant_id=tenant.pk, run_id=run.pk, seq=1, type="run.started", data={})
	assert record_deliveries(run=run, events=[started]) == []

	subscription = subscribe(["run.started"], url="https://example.com/hook").subscription
	after_create = record_deliveries(run=run, events=[started])
	webhook_update(actor=owner, subscription=subscription, event_types=["run.failed"])
	after_update = record_deliveries(run=run, events=[started])
	webhook_update(actor=owner, subscription=subscription, event_types=["run.*"])
	webhook_delete(actor=owner, subscription=subscription)
	after_delete = record_deliveries(run=run, events=[started])

	assert (len(after_create), after_update, after_delete) == (1, [], [])


def test_a_cache_outage_falls_back_to_the_database(
	publish: Callable[..., Workflow],
	owner: User,
	tenant: Tenant,
	settings: Any,
	monkeypatch: pytest.MonkeyPatch,
	caplog: pytest.LogCaptureFixture,
	subscribe: Callable[..., IssuedWebhook],
	settle: Settle,
) -> None:
	settings.WEBHOOK_SUBSCRIPTION_CACHE_SECONDS = 0
	run = run_start(actor=owner, workflow=publish(linear(task("a"))))
	run = Run.objects.for_tenant(tenant).select_related("tenant").get(pk=run.pk)
	event = RunEvent(tenant_id=tenant.pk, run_id=run.pk, seq=1, type="run.started", data={})

	def down(*args: Any, **kwargs: Any) -> Any:
		raise ConnectionError("cache unreachable")

	monkeypatch.setattr(outbox.cache, "get", down)
	monkeypatch.setattr(outbox.cache, "set", down)
	assert record_deliveries(run=run, events=[event]) == []
	settle(subscribe, ["run.*"], url="https://example.com/hook")  # its version bump fails too

	assert len(record_deliveries(run=run, events=[event])) == 1
	assert caplog.text.count("webhook subscription versions unavailable (cache unreachable)") >= 3


@pytest.mark.usefixtures("redis_configured")
def test_the_version_counter_lives_in_the_shared_redis_cache(
	subscribe: Callable[..., IssuedWebhook], settle: Settle, tenant: Tenant
) -> None:
	from django.core.cache import caches
	from django.core.cache.backends.redis import RedisCache

	key = outbox._version_key(tenant.pk)
	first = outbox._current_version(tenant.pk)

	settle(subscribe, ["*"], url="https://example.com/hook")

	assert isinstance(caches["default"], RedisCache)
	assert first is not None
	assert cache.get(key) not in (None, first)


def test_a_delivery_row_records_its_run_and_the_payload_names_its_version(
	subscribe: Callable[..., IssuedWebhook],
	receiver: Receiver,
	publish: Callable[..., Workflow],
	owner: User,
	settle: Settle,
	tenant: Tenant,
) -> None:
	subscribe(["run.waiting"])
	workflow = publish(linear(node("nap", "wait", duration="PT1H")), name="Naps", slug="naps")

	run = settle(run_start, actor=owner, workflow=workflow)

	[delivery] = deliveries(tenant)
	assert delivery.run_id == run.pk
	assert delivery.payload["data"] | {"seq": 0} == {
		"run_id": str(run.pk),
		"workflow_id": str(workflow.pk),
		"workflow_slug": "naps",
		"version": 1,
		"status": "waiting",
		"seq": 0,
	}


def test_the_per_process_cache_stays_bounded(
	publish: Callable[..., Workflow],
	owner: User,
	tenant: Tenant,
	tenant_factory: Callable[..., Tenant],
	monkeypatch: pytest.MonkeyPatch,
	subscribe: Callable[..., IssuedWebhook],
) -> None:
	monkeypatch.setattr(outbox, "_MAX_TENANTS_CACHED", 2)
	subscribe(["run.started"], url="https://example.com/hook")
	run = run_start(actor=owner, workflow=publish(linear(task("a"))))
	run = Run.objects.for_tenant(tenant).select_related("tenant").get(pk=run.pk)
	event = RunEvent(tenant_id=tenant.pk, run_id=run.pk, seq=1, type="run.started", data={})
	others = [tenant_factory() for _ in range(2)]

	outbox._listening.clear()
	for other in others:
		outbox._listening[other.pk] = outbox._Listening(
			version=None, fresh_until=0, reload_at=0, subscriptions=()
		)
	made = record_deliveries(run=run, events=[event])

	assert len(made) == 1
	assert list(outbox._listening) == [tenant.pk]
