"""The transition's hand-written statements write and read what the ORM would."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone

from tests.engine.harness import linear, node, task
from workflows.engine import sql
from workflows.engine.status import StepStatus
from workflows.models import Event, EventSubscription, Run, RunEvent, StepRun, Timer, User, Workflow
from workflows.services.runs import run_start

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager")]


def test_a_map_over_many_items_records_every_item_in_input_order(
	publish: Callable[..., Workflow], owner: User, settle: Callable[..., Any]
) -> None:
	# 120 new step rows in one transition: more than one INSERT takes on SQLite.
	body = {
		"nodes": [task("sq", "transform.jq", input={"expression": ". * .", "data": "${ .item }"})],
		"edges": [],
	}
	workflow = publish(linear(node("m", "map", items=".input.xs", body=body)))

	run = settle(run_start, actor=owner, workflow=workflow, input={"xs": list(range(120))})

	run = Run.objects.for_tenant(run.tenant).get(pk=run.pk)
	assert run.status == "succeeded", run.error
	assert run.output == [{"result": i * i} for i in range(120)]
	items = StepRun.objects.for_tenant(run.tenant).filter(run=run, node_id="sq")
	assert items.count() == 120
	assert sorted(step.input["data"] for step in items) == list(range(120))
	assert all(step.status == StepStatus.SUCCEEDED for step in items)


def test_lock_run_reads_the_run_as_the_orm_does(
	publish: Callable[..., Workflow], owner: User, settle: Callable[..., Any]
) -> None:
	workflow = publish(linear(task("a")))
	run = settle(run_start, actor=owner, workflow=workflow, input={"k": [1, "ü"]}, tags=["x"])
	expected = Run.objects._unfiltered().get(pk=run.pk)

	with transaction.atomic():
		locked = sql.lock_run(run.pk)

	for field in Run._meta.concrete_fields:
		assert getattr(locked, field.attname) == getattr(expected, field.attname), field.name
	assert locked.tenant == expected.tenant  # loaded on demand


def test_lock_run_of_an_unknown_run_raises_does_not_exist() -> None:
	with transaction.atomic(), pytest.raises(Run.DoesNotExist):
		sql.lock_run("01a22161-2766-7686-8121-cf3aa2806b83")


def test_kept_fields_are_only_filled_in_where_empty(
	publish: Callable[..., Workflow], owner: User, settle: Callable[..., Any]
) -> None:
	workflow = publish(linear(task("a")))
	run = settle(run_start, actor=owner, workflow=workflow)
	step = StepRun.objects._unfiltered().filter(run=run, node_id="a").get()
	first, later = step.started_at, timezone.now() + timedelta(hours=1)
	assert first is not None

	with transaction.atomic():
		writes = sql.Writes()
		writes.update(StepRun, step.pk, {"started_at": later, "worker": "w2"}, keep=frozenset({"started_at"}))
		writes.update(Run, run.pk, {"priority": 7})
		writes.send()

	step.refresh_from_db()
	assert (step.started_at, step.worker) == (first, "w2")
	assert Run.objects._unfiltered().get(pk=run.pk).priority == 7


def test_writes_past_one_statements_parameter_limit_are_split_and_all_land(
	publish: Callable[..., Workflow],
	owner: User,
	settle: Callable[..., Any],
	monkeypatch: pytest.MonkeyPatch,
) -> None:
	workflow = publish(linear(task("a")))
	run = settle(run_start, actor=owner, workflow=workflow)
	first_seq = Run.objects._unfiltered().get(pk=run.pk).last_seq
	monkeypatch.setattr(sql, "_max_params", lambda connection: 40)  # 4 events of 9 fields each

	with transaction.atomic():
		writes = sql.Writes()
		writes.insert(
			RunEvent,
			[
				RunEvent(
					tenant_id=run.tenant_id, run_id=run.pk, seq=first_seq + i, type="note", data={"i": i}
				)
				for i in range(1, 11)
			],
		)
		writes.update(Run, run.pk, {"last_seq": first_seq + 10})
		writes.send()

	notes = RunEvent.objects._unfiltered().filter(run=run, type="note").order_by("seq")
	assert [event.data["i"] for event in notes] == list(range(1, 11))
	assert Run.objects._unfiltered().get(pk=run.pk).last_seq == first_seq + 10


def test_a_timer_written_again_for_the_same_step_and_purpose_replaces_the_first(
	publish: Callable[..., Workflow], owner: User, settle: Callable[..., Any]
) -> None:
	run = settle(run_start, actor=owner, workflow=publish(linear(node("nap", "wait", duration="PT1H"))))
	first = Timer.objects._unfiltered().get(run=run)
	later = first.fire_at + timedelta(hours=2)

	with transaction.atomic():
		writes = sql.Writes()
		writes.insert(
			Timer,
			[Timer(tenant_id=run.tenant_id, run=run, key="root:nap", purpose="wait", fire_at=later)],
			replace=("run", "key", "purpose"),
		)
		writes.send()

	(timer,) = Timer.objects._unfiltered().filter(run=run)
	assert (timer.pk, timer.fire_at) == (first.pk, later)


def test_a_timer_is_taken_once_and_only_when_due(
	publish: Callable[..., Workflow], owner: User, settle: Callable[..., Any]
) -> None:
	run = settle(run_start, actor=owner, workflow=publish(linear(node("nap", "wait", duration="PT1H"))))
	fire_at = Timer.objects._unfiltered().get(run=run).fire_at

	early = sql.take_timer(run.pk, "root:nap", "wait", due_by=fire_at - timedelta(seconds=1))
	other = sql.take_timer(run.pk, "root:nap", "retry", due_by=fire_at)
	taken = sql.take_timer(run.pk, "root:nap", "wait", due_by=fire_at)
	again = sql.take_timer(run.pk, "root:nap", "wait", due_by=fire_at)

	assert (early, other, taken, again) == (False, False, True, False)
	assert not Timer.objects._unfiltered().filter(run=run).exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="psycopg's statement cache (PostgreSQL)")
def test_psycopg_parses_a_long_statement_once() -> None:
	from psycopg import _queries

	# More parameters than psycopg caches by default (50): a transition's writes have 60 to 200.
	sql_text = "SELECT " + ", ".join(["%s::int"] * 120)
	before = _queries._query2pg_client.cache_info()
	with connection.cursor() as cursor:
		for _ in range(3):
			cursor.execute(sql_text, list(range(120)))
			assert cursor.fetchone() == tuple(range(120))
	after = _queries._query2pg_client.cache_info()

	assert after.hits - before.hits >= 2


def test_timers_cancelled_with_a_transition_are_gone_and_others_stay(
	publish: Callable[..., Workflow], owner: User, settle: Callable[..., Any]
) -> None:
	run = settle(run_start, actor=owner, workflow=publish(linear(node("nap", "wait", duration="PT1H"))))
	(nap,) = Timer.objects._unfiltered().filter(run=run)
	other = Timer(tenant_id=run.tenant_id, run=run, key="root:other", purpose="wait", fire_at=nap.fire_at)

	with transaction.atomic():
		writes = sql.Writes()
		writes.insert(Timer, [other], replace=("run", "key", "purpose"))
		writes.delete(Timer, run=run.pk, key__in=["root:nap"])
		writes.delete(Timer, run=run.pk, key__in=[])  # nothing to delete: no statement
		writes.send()

	assert list(Timer.objects._unfiltered().filter(run=run).values_list("key", flat=True)) == ["root:other"]


def _other_connection() -> Any:
	"""A second connection to the test database: sees only what is committed."""
	import psycopg

	params = connection.settings_dict
	return psycopg.connect(
		host=params["HOST"] or "127.0.0.1",
		port=params["PORT"] or 5432,
		user=params["USER"],
		password=params["PASSWORD"] or None,
		dbname=params["NAME"],
		autocommit=True,
	)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("postgres_only")
def test_writes_sent_with_the_commit_are_committed_then_and_on_commit_callbacks_still_run(
	publish: Callable[..., Workflow], owner: User, settle: Callable[..., Any]
) -> None:
	workflow = publish(linear(task("a")))
	run = settle(run_start, actor=owner, workflow=workflow)
	ran: list[str] = []

	with _other_connection() as other, transaction.atomic():
		writes = sql.Writes()
		writes.update(Run, run.pk, {"priority": 7})
		writes.send(commit=True)
		transaction.on_commit(lambda: ran.append("after commit"))
		seen = other.execute("SELECT priority FROM workflows_run WHERE id = %s", [run.pk]).fetchone()
		assert ran == []

	assert seen == (7,)  # committed before the atomic block ended
	assert ran == ["after commit"]
	assert Run.objects._unfiltered().get(pk=run.pk).priority == 7  # the connection goes on


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("postgres_only")
def test_a_commit_that_fails_with_the_writes_raises_and_keeps_nothing(
	publish: Callable[..., Workflow], owner: User, settle: Callable[..., Any]
) -> None:
	from django.db import IntegrityError

	from workflows.models.base import uuid7

	workflow = publish(linear(task("a")))
	run = settle(run_start, actor=owner, workflow=workflow)
	ran: list[str] = []
	orphan = RunEvent(tenant_id=run.tenant_id, run_id=uuid7(), seq=1, type="note", data={})

	def transition() -> None:
		with transaction.atomic():
			writes = sql.Writes()
			writes.update(Run, run.pk, {"priority": 7})
			writes.insert(RunEvent, [orphan])  # its run does not exist: the deferred check fails at COMMIT
			writes.send(commit=True)
			transaction.on_commit(lambda: ran.append("after commit"))

	with pytest.raises(IntegrityError):
		transition()

	assert Run.objects._unfiltered().get(pk=run.pk).priority != 7
	assert not RunEvent.objects._unfiltered().filter(pk=orphan.pk).exists()
	assert ran == []


def _waiting_runs(
	publish: Callable[..., Workflow], owner: User, settle: Callable[..., Any], orders: list[str]
) -> list[Run]:
	doc = linear(node("paid", "wait_for_event", event_type="order.paid", correlation="${ .input.order }"))
	workflow = publish(doc)
	return [settle(run_start, actor=owner, workflow=workflow, input={"order": order}) for order in orders]


def test_store_event_takes_the_matching_subscriptions_and_counts_them_on_the_event(
	publish: Callable[..., Workflow], owner: User, settle: Callable[..., Any]
) -> None:
	same, also, _ = _waiting_runs(publish, owner, settle, ["A", "A", "B"])
	other = EventSubscription.objects._unfiltered().get(correlation='"B"')

	with transaction.atomic():
		event = Event(tenant_id=same.tenant_id, type="order.paid", correlation='"A"', payload={"x": 1})
		taken = sql.store_event(event)
		nobody = Event(tenant_id=same.tenant_id, type="order.paid", correlation='"Z"', payload={})
		none_taken = sql.store_event(nobody)

	assert sorted(run_id for _, run_id, _ in taken) == sorted([same.pk, also.pk])
	assert {key for _, _, key in taken} == {"root:paid"}
	assert none_taken == []
	stored = Event.objects._unfiltered().get(pk=event.pk)
	assert (stored.delivered, event.delivered) == (2, 2)
	assert stored.consumed_at is not None
	assert stored.consumed_at == event.consumed_at
	assert stored.payload == {"x": 1}
	kept = Event.objects._unfiltered().get(pk=nobody.pk)
	assert (kept.delivered, kept.consumed_at, nobody.consumed_at) == (0, None, None)
	assert list(EventSubscription.objects._unfiltered().values_list("pk", flat=True)) == [other.pk]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("postgres_only")
def test_store_event_skips_a_subscription_another_publisher_is_taking(
	publish: Callable[..., Workflow], owner: User, settle: Callable[..., Any]
) -> None:
	run = _waiting_runs(publish, owner, settle, ["A"])[0]

	with _other_connection() as other, other.transaction():
		other.execute("SELECT id FROM workflows_eventsubscription FOR UPDATE")
		with transaction.atomic():
			event = Event(tenant_id=run.tenant_id, type="order.paid", correlation='"A"', payload={})
			taken = sql.store_event(event)

	assert taken == []
	assert Event.objects._unfiltered().get(pk=event.pk).delivered == 0
	assert EventSubscription.objects._unfiltered().filter(run=run).exists()  # left to the other publisher
