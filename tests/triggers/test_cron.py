"""Cron triggers firing: on time, missed-fire policies, DST nights, failures, and two beats at once.

The sweep takes ``now``, so these tests move the clock by passing it; no clock library.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from workflows.engine.status import RunStatus
from workflows.models import Run, Tenant, Trigger, User, Workflow
from workflows.roles import Perm
from workflows.services.definitions import workflow_archive
from workflows.services.tenancy import object_soft_delete
from workflows.services.triggers import CRON_MAX_CATCH_UP, IssuedTrigger, trigger_delete, trigger_disable
from workflows.tasks import fire_cron_triggers_task, fire_due_cron_triggers

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager")]

PARIS = ZoneInfo("Europe/Paris")


def runs_of(trigger: Trigger) -> list[Run]:
	return list(
		Run.objects.for_tenant(trigger.tenant)
		.filter(trigger_kind="cron", trigger_ref=str(trigger.pk))
		.order_by("created_at")
	)


def reload(trigger: Trigger) -> Trigger:
	return Trigger.objects.for_tenant(trigger.tenant).get(pk=trigger.pk)


def due(trigger: Trigger) -> datetime:
	assert trigger.next_fire_at is not None
	return trigger.next_fire_at


def set_next_fire(trigger: Trigger, when: datetime) -> None:
	Trigger.objects.for_tenant(trigger.tenant).filter(pk=trigger.pk).update(next_fire_at=when)


@pytest.mark.parametrize("policy", ["skip", "fire_once", "fire_all"])
def test_an_occurrence_fires_once_on_time_whatever_the_policy(
	make_trigger: Callable[..., IssuedTrigger], settle: Callable[..., Any], policy: str
) -> None:
	trigger = make_trigger(missed_fire_policy=policy, cron_expression="*/5 * * * *").trigger
	at = due(trigger)

	early = settle(fire_due_cron_triggers, now=at - timedelta(seconds=1))
	started = settle(fire_due_cron_triggers, now=at + timedelta(seconds=3))
	again = settle(fire_due_cron_triggers, now=at + timedelta(seconds=4))

	assert (early, started, again) == (0, 1, 0)
	[run] = runs_of(trigger)
	assert run.status == RunStatus.SUCCEEDED
	assert run.input == {"order": "scheduled"}
	assert run.started_by is None
	assert reload(trigger).next_fire_at == at + timedelta(minutes=5)
	assert reload(trigger).last_fired_at is not None


def test_skip_drops_occurrences_missed_during_an_outage(
	make_trigger: Callable[..., IssuedTrigger], caplog: pytest.LogCaptureFixture
) -> None:
	trigger = make_trigger(missed_fire_policy="skip").trigger
	at = due(trigger)

	with caplog.at_level(logging.WARNING, logger="apg.triggers"):
		started = fire_due_cron_triggers(now=at + timedelta(minutes=17))

	assert started == 0
	assert runs_of(trigger) == []
	assert reload(trigger).next_fire_at == at + timedelta(minutes=20)
	assert "missed 4 occurrence(s) (policy skip)" in caplog.text


def test_skip_still_fires_the_latest_occurrence_when_it_is_on_time(
	make_trigger: Callable[..., IssuedTrigger],
) -> None:
	trigger = make_trigger(missed_fire_policy="skip").trigger
	at = due(trigger)

	started = fire_due_cron_triggers(now=at + timedelta(minutes=15, seconds=10))

	assert started == 1
	assert reload(trigger).next_fire_at == at + timedelta(minutes=20)


def test_fire_once_makes_up_for_an_outage_with_one_run(make_trigger: Callable[..., IssuedTrigger]) -> None:
	trigger = make_trigger(missed_fire_policy="fire_once").trigger
	at = due(trigger)

	started = fire_due_cron_triggers(now=at + timedelta(minutes=17))

	assert started == 1
	assert len(runs_of(trigger)) == 1
	assert reload(trigger).next_fire_at == at + timedelta(minutes=20)


def test_fire_all_starts_one_run_per_missed_occurrence(make_trigger: Callable[..., IssuedTrigger]) -> None:
	trigger = make_trigger(missed_fire_policy="fire_all").trigger
	at = due(trigger)

	started = fire_due_cron_triggers(now=at + timedelta(minutes=17))

	assert started == 4
	assert len(runs_of(trigger)) == 4
	assert reload(trigger).next_fire_at == at + timedelta(minutes=20)


def test_fire_all_is_bounded_after_a_long_outage(
	make_trigger: Callable[..., IssuedTrigger], caplog: pytest.LogCaptureFixture
) -> None:
	trigger = make_trigger(missed_fire_policy="fire_all", cron_expression="* * * * *").trigger
	at = due(trigger)

	with caplog.at_level(logging.WARNING, logger="apg.triggers"):
		started = fire_due_cron_triggers(now=at + timedelta(hours=5))

	assert started == CRON_MAX_CATCH_UP == 100
	assert reload(trigger).next_fire_at == at + timedelta(hours=5, minutes=1)
	assert "missed at least 1 occurrence(s) (policy fire_all)" in caplog.text


def test_a_daily_trigger_in_paris_fires_at_the_right_wall_clock_times_across_dst(
	make_trigger: Callable[..., IssuedTrigger],
) -> None:
	trigger = make_trigger(cron_expression="30 2 * * *", timezone="Europe/Paris").trigger
	set_next_fire(trigger, datetime(2025, 3, 29, 2, 30, tzinfo=PARIS))
	fired: list[str] = []

	for _ in range(2):  # the night before spring forward, then the short night
		at = due(reload(trigger))
		assert fire_due_cron_triggers(now=at + timedelta(seconds=2)) == 1
		fired.append(at.astimezone(PARIS).isoformat())
	after_spring = due(reload(trigger)).astimezone(PARIS).isoformat()
	set_next_fire(trigger, datetime(2025, 10, 26, 0, 30, tzinfo=ZoneInfo("UTC")))  # 02:30 CEST
	assert fire_due_cron_triggers(now=datetime(2025, 10, 26, 0, 30, 2, tzinfo=ZoneInfo("UTC"))) == 1
	second_0230 = fire_due_cron_triggers(now=datetime(2025, 10, 26, 1, 30, 2, tzinfo=ZoneInfo("UTC")))

	assert fired == ["2025-03-29T02:30:00+01:00", "2025-03-30T03:00:00+02:00"]
	assert after_spring == "2025-03-31T02:30:00+02:00"
	assert second_0230 == 0  # 02:30 CET, the repeated hour, does not fire again
	assert due(reload(trigger)).astimezone(PARIS).isoformat() == "2025-10-27T02:30:00+01:00"


def test_disabled_deleted_and_orphaned_triggers_do_not_fire(
	make_trigger: Callable[..., IssuedTrigger],
	owner: User,
	tenant: Tenant,
	publish: Callable[..., Workflow],
	tenant_factory: Callable[..., Tenant],
) -> None:
	from tests.triggers.conftest import order_flow

	disabled = make_trigger().trigger
	deleted = make_trigger().trigger
	orphan_workflow = publish(order_flow(), name="Soon gone")
	orphaned = make_trigger(workflow=orphan_workflow).trigger
	at = due(disabled)
	trigger_disable(actor=owner, trigger=disabled)
	set_next_fire(disabled, at)
	trigger_delete(actor=owner, trigger=deleted)
	object_soft_delete(actor=owner, obj=orphan_workflow, perm=Perm.WORKFLOW_DELETE)
	live = make_trigger().trigger

	started = fire_due_cron_triggers(now=at + timedelta(seconds=5))
	tenant.is_active = False
	tenant.save()
	set_next_fire(live, at)
	inactive_tenant = fire_due_cron_triggers(now=at + timedelta(seconds=6))

	assert started == 1
	assert [len(runs_of(t)) for t in (disabled, deleted, orphaned, live)] == [0, 0, 0, 1]
	assert inactive_tenant == 0


def test_a_run_that_cannot_start_is_logged_and_the_schedule_moves_on(
	make_trigger: Callable[..., IssuedTrigger],
	owner: User,
	workflow: Workflow,
	caplog: pytest.LogCaptureFixture,
) -> None:
	trigger = make_trigger().trigger
	at = due(trigger)
	workflow_archive(actor=owner, workflow=workflow)

	with caplog.at_level(logging.WARNING, logger="apg.triggers"):
		started = fire_due_cron_triggers(now=at + timedelta(seconds=2))

	assert started == 0
	assert reload(trigger).next_fire_at == at + timedelta(minutes=5)
	assert "could not start a run" in caplog.text
	assert "archived" in caplog.text


def test_one_broken_trigger_never_stalls_the_others(
	make_trigger: Callable[..., IssuedTrigger],
	monkeypatch: pytest.MonkeyPatch,
	caplog: pytest.LogCaptureFixture,
) -> None:
	import workflows.services.triggers.firing as triggers_module

	unreadable = make_trigger().trigger
	crashing = make_trigger(name="crashing").trigger
	healthy = make_trigger(name="healthy").trigger
	at = due(healthy)
	for trigger in (unreadable, crashing):
		set_next_fire(trigger, at - timedelta(minutes=5))
	Trigger.objects.for_tenant(unreadable.tenant).filter(pk=unreadable.pk).update(cron_expression="garbage")
	real_run_start = triggers_module.run_start

	def run_start(**kwargs: Any) -> Run:
		if kwargs["trigger_ref"] == str(crashing.pk):
			raise RuntimeError("database hiccup")
		return real_run_start(**kwargs)

	monkeypatch.setattr(triggers_module, "run_start", run_start)

	with caplog.at_level(logging.WARNING, logger="apg.triggers"):
		started = fire_due_cron_triggers(now=at + timedelta(seconds=2))

	assert started == 1
	assert len(runs_of(healthy)) == 1
	assert reload(unreadable).next_fire_at is None
	assert reload(crashing).next_fire_at == at + timedelta(minutes=5)
	assert "unusable schedule and is stopped" in caplog.text
	assert "database hiccup" in caplog.text


def test_a_sweep_stops_at_its_limit_and_the_next_one_carries_on(
	make_trigger: Callable[..., IssuedTrigger],
) -> None:
	first, second = make_trigger(name="first").trigger, make_trigger(name="second").trigger
	at = due(first)
	set_next_fire(second, at)

	one = fire_due_cron_triggers(now=at + timedelta(seconds=1), limit=1)
	rest = fire_due_cron_triggers(now=at + timedelta(seconds=2), limit=1)

	assert (one, rest) == (1, 1)
	assert [len(runs_of(t)) for t in (first, second)] == [1, 1]


def test_the_beat_task_fires_what_is_due_now(make_trigger: Callable[..., IssuedTrigger]) -> None:
	trigger = make_trigger(cron_expression="* * * * *", missed_fire_policy="fire_once").trigger
	set_next_fire(trigger, timezone.now().replace(second=0, microsecond=0))  # the minute that just began

	started = fire_cron_triggers_task()

	assert started == 1
	assert due(reload(trigger)) > timezone.now()
	schedule = settings.CELERY_BEAT_SCHEDULE["fire-cron-triggers"]
	assert (schedule["task"], schedule["schedule"], schedule["options"]["queue"]) == (
		"apg.fire_cron_triggers",
		5.0,
		"engine",
	)


# --- two beats at once (PostgreSQL row locks) ---------------------------------------------------


def _in_thread(fn: Callable[[], Any], results: list[Any]) -> threading.Thread:
	def body() -> None:
		try:
			results.append(fn())
		except BaseException as exc:  # noqa: BLE001 - reported to the test thread
			results.append(exc)
		finally:
			connection.close()

	thread = threading.Thread(target=body)
	thread.start()
	return thread


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("postgres_only")
def test_two_concurrent_sweeps_fire_every_occurrence_exactly_once(
	make_trigger: Callable[..., IssuedTrigger],
) -> None:
	triggers = [
		make_trigger(name=f"t{i}", cron_expression="* * * * *", missed_fire_policy="fire_all").trigger
		for i in range(8)
	]
	at = due(triggers[0])
	for trigger in triggers:
		set_next_fire(trigger, at)
	now = at + timedelta(minutes=2, seconds=1)  # three occurrences owed by each
	barrier = threading.Barrier(2)
	results: list[Any] = []

	def sweep() -> int:
		barrier.wait(timeout=10)
		return fire_due_cron_triggers(now=now)

	threads = [_in_thread(sweep, results) for _ in range(2)]
	for thread in threads:
		thread.join(timeout=60)

	assert all(isinstance(r, int) for r in results), results
	assert sum(results) == 24
	assert [len(runs_of(t)) for t in triggers] == [3] * 8
	assert {due(reload(t)) for t in triggers} == {at + timedelta(minutes=3)}


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("postgres_only")
def test_a_sweep_skips_a_trigger_another_beat_holds_instead_of_waiting(
	make_trigger: Callable[..., IssuedTrigger],
) -> None:
	trigger = make_trigger().trigger
	at = due(trigger)
	locked, release = threading.Event(), threading.Event()
	held: list[Any] = []

	def hold() -> None:
		with transaction.atomic():
			Trigger.objects.for_tenant(trigger.tenant).select_for_update().get(pk=trigger.pk)
			locked.set()
			release.wait(timeout=30)

	holder = _in_thread(hold, held)
	assert locked.wait(timeout=10)
	meanwhile: list[Any] = []
	sweeper = _in_thread(lambda: fire_due_cron_triggers(now=at + timedelta(seconds=1)), meanwhile)
	sweeper.join(timeout=10)
	blocked = sweeper.is_alive()
	release.set()
	holder.join(timeout=10)
	sweeper.join(timeout=10)

	assert not blocked
	assert meanwhile == [0]
	assert fire_due_cron_triggers(now=at + timedelta(seconds=2)) == 1
	assert len(runs_of(trigger)) == 1
