"""The step worker: claiming, recording once, leases kept by one thread, recovery of lost messages."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from tests.conftest import need_service
from tests.engine.harness import linear, node, task
from workflows.context import tenant_scope
from workflows.engine.core import StepSucceeded
from workflows.engine.status import RunStatus, StepStatus
from workflows.engine.worker import LeaseKeeper, StepExecutor, claim_step, record_outcome
from workflows.models import Run, StepRun, Timer, User, Workflow
from workflows.services.runs import run_cancel, run_start
from workflows.tasks import (
	BROKER_EPOCH_KEY,
	broker_epoch,
	fire_timer_task,
	reap_steps_task,
	sweep_timers_task,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager")]


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
	"""The (step id, queue) messages the engine sends to the broker, recorded instead of sent."""
	from workflows.engine import effects

	recorded: list[tuple[str, str]] = []
	monkeypatch.setattr(effects, "dispatch_steps", lambda steps, priority: recorded.extend(steps))
	return recorded


def lost_start(workflow: Workflow, owner: User, capture: Any) -> tuple[Run, StepRun]:
	"""Start a run whose first step's message is lost (never executed)."""
	with capture(execute=False):
		run = run_start(actor=owner, workflow=workflow)
	step = StepRun.objects._unfiltered().get(run=run, key="root:a")
	return run, step


def test_a_claim_takes_the_step_once_and_leases_it_to_this_host(
	publish: Callable[..., Workflow], owner: User, django_capture_on_commit_callbacks: Any
) -> None:
	_, step = lost_start(publish(linear(task("a"))), owner, django_capture_on_commit_callbacks)

	first = claim_step(str(step.pk))
	second = claim_step(str(step.pk))

	assert first is not None
	assert first.pk == step.pk
	assert first.status == StepStatus.RUNNING
	assert first.worker
	assert first.lease_expires_at is not None
	assert first.lease_expires_at > timezone.now()
	assert first.input == step.input
	assert second is None


def test_run_start_returns_the_started_run_without_reading_it_back(
	publish: Callable[..., Workflow], owner: User, django_capture_on_commit_callbacks: Any
) -> None:
	run, step = lost_start(publish(linear(task("a"))), owner, django_capture_on_commit_callbacks)

	stored = Run.objects._unfiltered().get(pk=run.pk)
	assert run.status == stored.status == RunStatus.RUNNING
	assert run.last_seq == stored.last_seq > 0
	assert run.state == stored.state
	assert step.status == StepStatus.SCHEDULED


def test_an_outcome_the_run_no_longer_waits_for_closes_its_step_without_advancing(
	publish: Callable[..., Workflow],
	owner: User,
	settle: Callable[..., Any],
	django_capture_on_commit_callbacks: Any,
) -> None:
	run, step = lost_start(publish(linear(task("a"), task("b"))), owner, django_capture_on_commit_callbacks)
	claimed = claim_step(str(step.pk))
	assert claimed is not None
	settle(run_cancel, actor=owner, run=run)
	seq = Run.objects._unfiltered().get(pk=run.pk).last_seq

	taken = record_outcome(claimed, StepSucceeded(claimed.key, claimed.attempt, {"late": True}))
	again = record_outcome(claimed, StepSucceeded(claimed.key, claimed.attempt, {"late": True}))

	after = Run.objects._unfiltered().get(pk=run.pk)
	row = StepRun.objects._unfiltered().get(pk=step.pk)
	assert (taken, again) == (False, False)
	assert after.status == RunStatus.CANCELLED
	assert after.last_seq == seq
	assert row.status not in (StepStatus.SCHEDULED, StepStatus.RUNNING)
	assert row.lease_expires_at is None
	assert not StepRun.objects._unfiltered().filter(run=run, key="root:b").exists()
	assert settle(reap_steps_task) == 0


def test_a_recorded_step_keeps_its_start_time_worker_and_output(
	publish: Callable[..., Workflow], owner: User, settle: Callable[..., Any]
) -> None:
	run = settle(run_start, actor=owner, workflow=publish(linear(task("a", input={"value": 7}))))

	row = StepRun.objects._unfiltered().get(run=run, key="root:a")
	assert row.status == StepStatus.SUCCEEDED
	assert row.output == {"value": 7}
	assert row.worker
	assert row.scheduled_at is not None
	assert row.started_at is not None
	assert row.finished_at is not None
	assert row.scheduled_at <= row.started_at <= row.finished_at
	assert row.lease_expires_at is None


def test_the_lease_keeper_renews_running_steps_and_passes_on_cancellation(
	publish: Callable[..., Workflow],
	owner: User,
	settings: Any,
	django_capture_on_commit_callbacks: Any,
) -> None:
	settings.STEP_LEASE_SECONDS = 30
	_, step = lost_start(publish(linear(task("a"))), owner, django_capture_on_commit_callbacks)
	claimed = claim_step(str(step.pk))
	assert claimed is not None
	assert claimed.lease_expires_at is not None
	keeper = LeaseKeeper()  # no thread: ticked by hand
	executor = StepExecutor(str(step.pk))
	keeper.watch(executor)

	keeper.tick()  # just started: nothing is due yet
	unchanged = StepRun.objects._unfiltered().get(pk=step.pk).lease_expires_at
	executor.started -= 11  # a third of the lease has passed
	keeper.tick()
	renewed = StepRun.objects._unfiltered().get(pk=step.pk).lease_expires_at
	StepRun.objects._unfiltered().filter(pk=step.pk).update(cancel_requested=True)
	keeper._renewed[executor.step_id] -= 11
	keeper.tick()

	assert unchanged == claimed.lease_expires_at
	assert renewed is not None
	assert renewed > claimed.lease_expires_at
	assert executor.cancel.is_set()
	assert "cancelled" in (executor.cancel.reason or "")


def test_the_lease_keeper_stops_an_action_whose_step_was_taken_away(
	publish: Callable[..., Workflow], owner: User, django_capture_on_commit_callbacks: Any
) -> None:
	_, step = lost_start(publish(linear(task("a"))), owner, django_capture_on_commit_callbacks)
	keeper = LeaseKeeper()
	executor = StepExecutor(str(step.pk))  # never claimed: the step is not running here
	keeper.watch(executor)
	executor.started -= django_settings.STEP_LEASE_SECONDS

	keeper.tick()
	keeper.unwatch(executor)

	assert executor.cancel.is_set()
	assert keeper._watched == {}


def test_a_worker_process_has_one_lease_keeper() -> None:
	assert LeaseKeeper.get() is LeaseKeeper.get()


def test_without_a_broker_epoch_a_step_scheduled_too_long_ago_is_sent_again(
	publish: Callable[..., Workflow],
	owner: User,
	settings: Any,
	monkeypatch: pytest.MonkeyPatch,
	settle: Callable[..., Any],
	django_capture_on_commit_callbacks: Any,
) -> None:
	from config.celery import app as celery_app

	monkeypatch.setattr(celery_app.conf, "broker_url", "memory://localhost/")  # a broker without an epoch
	assert broker_epoch() is None
	run, step = lost_start(publish(linear(task("a"))), owner, django_capture_on_commit_callbacks)
	fresh = settle(reap_steps_task)
	StepRun.objects._unfiltered().filter(pk=step.pk).update(
		scheduled_at=timezone.now() - timedelta(seconds=settings.STEP_REDISPATCH_SECONDS + 1)
	)

	reaped = settle(reap_steps_task)

	assert (fresh, reaped) == (0, 1)
	assert Run.objects._unfiltered().get(pk=run.pk).status == RunStatus.SUCCEEDED


def test_with_redis_a_long_queue_is_not_sent_twice_but_a_lost_broker_is(
	publish: Callable[..., Workflow],
	owner: User,
	settings: Any,
	settle: Callable[..., Any],
	django_capture_on_commit_callbacks: Any,
) -> None:
	need_service("Redis", bool(django_settings.REDIS_URL), "set REDIS_URL=redis://127.0.0.1:6379/0")
	import redis

	from config.celery import app as celery_app

	broker = redis.Redis.from_url(celery_app.conf.broker_url)
	broker.set(BROKER_EPOCH_KEY, repr(time.time() - 86_400))  # the broker has kept its data for a day
	run, step = lost_start(publish(linear(task("a"))), owner, django_capture_on_commit_callbacks)
	with tenant_scope(run.tenant):
		StepRun.objects.filter(pk=step.pk).update(
			scheduled_at=timezone.now() - timedelta(seconds=settings.STEP_REDISPATCH_SECONDS * 10)
		)
	queued = settle(reap_steps_task)  # waited long, but in this epoch: still in the queue
	broker.delete(BROKER_EPOCH_KEY)  # Redis restarted without its data

	lost = settle(reap_steps_task)

	assert (queued, lost) == (0, 1)
	assert Run.objects._unfiltered().get(pk=run.pk).status == RunStatus.SUCCEEDED


def test_a_long_wait_holds_no_lease(
	publish: Callable[..., Workflow], owner: User, settle: Callable[..., Any]
) -> None:
	run = settle(run_start, actor=owner, workflow=publish(linear(node("nap", "wait", duration="PT1H"))))

	assert Run.objects._unfiltered().get(pk=run.pk).status == RunStatus.WAITING
	assert not StepRun.objects._unfiltered().filter(run=run, lease_expires_at__isnull=False).exists()


@pytest.mark.django_db(transaction=True)
def test_a_worker_runs_the_next_steps_on_its_queue_itself_within_its_budget(
	publish: Callable[..., Workflow], owner: User, settings: Any, sent: list[tuple[str, str]]
) -> None:
	workflow = publish(linear(task("a"), task("b"), task("c"), task("d")))
	run = run_start(actor=owner, workflow=workflow)
	first = StepRun.objects._unfiltered().get(run=run, key="root:a")
	settings.STEP_CONTINUE_MAX_STEPS = 3

	executed = StepExecutor(str(first.pk)).run(queue="steps")

	rows = {s.key: s for s in StepRun.objects._unfiltered().filter(run=run)}
	assert executed == 3
	assert [rows[k].status for k in ("root:a", "root:b", "root:c")] == [StepStatus.SUCCEEDED] * 3
	assert rows["root:b"].worker == rows["root:a"].worker != ""
	assert rows["root:d"].status == StepStatus.SCHEDULED  # the budget is spent: back to the broker
	assert sent == [(str(first.pk), "steps"), (str(rows["root:d"].pk), "steps")]

	assert StepExecutor(str(rows["root:d"].pk)).run(queue="steps") == 1
	assert Run.objects._unfiltered().get(pk=run.pk).status == RunStatus.SUCCEEDED


@pytest.mark.django_db(transaction=True)
def test_a_worker_does_not_keep_steps_meant_for_another_queue(
	publish: Callable[..., Workflow], owner: User, sent: list[tuple[str, str]]
) -> None:
	workflow = publish(linear(task("a"), task("fib", "compute.fibonacci", input={"n": 5}, queue="steps.cpu")))
	run = run_start(actor=owner, workflow=workflow)
	first = StepRun.objects._unfiltered().get(run=run, key="root:a")

	executed = StepExecutor(str(first.pk)).run(queue="steps")

	fib = StepRun.objects._unfiltered().get(run=run, key="root:fib")
	assert executed == 1
	assert fib.status == StepStatus.SCHEDULED
	assert sent[-1] == (str(fib.pk), "steps.cpu")


@pytest.mark.django_db(transaction=True)
def test_a_worker_firing_a_timer_runs_the_step_after_the_wait_itself(
	publish: Callable[..., Workflow], owner: User, sent: list[tuple[str, str]]
) -> None:
	workflow = publish(linear(task("a"), node("nap", "wait", duration="PT1H"), task("b")))
	run = run_start(actor=owner, workflow=workflow)
	StepExecutor(str(StepRun.objects._unfiltered().get(run=run, key="root:a").pk)).run(queue="steps")
	Timer.objects._unfiltered().filter(run=run).update(fire_at=timezone.now() - timedelta(seconds=1))

	# Called as a worker calls it (this process consumes every queue): b is not sent, but run here.
	fire_timer_task(str(run.pk), "root:nap", "wait")
	fire_timer_task(str(run.pk), "root:nap", "wait")  # a second delivery finds the timer taken

	b = StepRun.objects._unfiltered().get(run=run, key="root:b")
	assert Run.objects._unfiltered().get(pk=run.pk).status == RunStatus.SUCCEEDED
	assert (b.status, b.attempt) == (StepStatus.SUCCEEDED, 1)
	assert b.worker != ""
	assert [key for key, _ in sent] == [str(StepRun.objects._unfiltered().get(run=run, key="root:a").pk)]


@pytest.mark.django_db(transaction=True)
def test_the_sweep_runs_the_steps_after_the_waits_it_fires_on_its_own_worker(
	publish: Callable[..., Workflow], owner: User, sent: list[tuple[str, str]]
) -> None:
	workflow = publish(linear(node("nap", "wait", duration="PT1H"), task("b")))
	runs = [run_start(actor=owner, workflow=workflow) for _ in range(3)]
	Timer.objects._unfiltered().filter(run__in=runs).update(fire_at=timezone.now() - timedelta(seconds=1))

	# Called as beat's message is run by a worker (this process consumes every queue).
	fired = sweep_timers_task()

	assert fired == 3
	assert sweep_timers_task() == 0  # nothing left to fire
	for run in runs:
		b = StepRun.objects._unfiltered().get(run=run, key="root:b")
		assert Run.objects._unfiltered().get(pk=run.pk).status == RunStatus.SUCCEEDED
		assert (b.status, b.attempt) == (StepStatus.SUCCEEDED, 1)
	assert sent == []  # no step went through the broker


@pytest.mark.django_db(transaction=True)
def test_a_timer_fired_outside_a_worker_sends_the_next_step_to_its_queue(
	publish: Callable[..., Workflow], owner: User, sent: list[tuple[str, str]]
) -> None:
	run = run_start(actor=owner, workflow=publish(linear(node("nap", "wait", duration="PT1H"), task("b"))))
	Timer.objects._unfiltered().filter(run=run).update(fire_at=timezone.now() - timedelta(seconds=1))

	fire_timer_task.apply(args=(str(run.pk), "root:nap", "wait"))  # eager: no queue of its own

	b = StepRun.objects._unfiltered().get(run=run, key="root:b")
	assert b.status == StepStatus.SCHEDULED
	assert sent == [(str(b.pk), "steps")]
