"""Celery tasks of the engine. Each takes ids, is idempotent, and is sent after commit."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import Task, shared_task
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from workflows.engine import sql
from workflows.engine.core import TimerFired
from workflows.engine.runtime import advance, happening_from_dict
from workflows.engine.starting import admit_pending, start_if_admitted
from workflows.engine.status import RunStatus, StepStatus
from workflows.engine.worker import StepExecutor
from workflows.models import Approval, Event, Run, StepRun, Trigger, TriggerKind
from workflows.services.triggers import cron_trigger_fire, event_triggers_start

__all__ = [
	"BROKER_EPOCH_KEY",
	"admit_runs_task",
	"broker_epoch",
	"deliver_task",
	"execute_step_task",
	"fire_cron_triggers_task",
	"fire_due_cron_triggers",
	"fire_timer_task",
	"notify_approval_task",
	"reap_steps_task",
	"start_event_triggers_task",
	"start_run_task",
	"sweep_events_task",
	"sweep_timers_task",
]

logger = logging.getLogger("apg.engine")


@shared_task(name="apg.execute_step", bind=True, acks_late=True, ignore_result=True)
def execute_step_task(self: Task, step_id: str) -> None:
	"""Execute one step attempt (steps and steps.cpu queues), and the steps it leads to on the same queue."""
	delivery = self.request.delivery_info or {}
	queue = delivery.get("routing_key") if not self.request.is_eager else None
	StepExecutor(step_id).run(queue=queue or None)


@shared_task(name="apg.deliver", acks_late=True, ignore_result=True)
def deliver_task(run_id: str, happening: dict[str, Any]) -> None:
	"""Apply a happening sent by another run or a lifecycle request."""
	advance(run_id, happening_from_dict(happening))


@shared_task(name="apg.start_run", acks_late=True, ignore_result=True)
def start_run_task(run_id: str) -> None:
	"""Start a pending run if limits allow (sub-workflow runs)."""
	run = Run.objects._unfiltered().select_related("workflow", "version", "tenant").filter(pk=run_id).first()
	if run is not None and run.status == RunStatus.PENDING and run.state is None:
		start_if_admitted(run)


@shared_task(name="apg.admit_runs", acks_late=True, ignore_result=True)
def admit_runs_task(tenant_id: str) -> None:
	"""Start queued runs now that a slot may be free."""
	admit_pending(tenant_id)


@shared_task(name="apg.fire_timer", bind=True, acks_late=True, ignore_result=True)
def fire_timer_task(self: Task, run_id: str, key: str, purpose: str) -> None:
	"""The fast path for a short timer; the sweep fires it otherwise (whichever comes first).

	When the transition dispatches a step to a queue this worker consumes (a wait followed
	by a task), the worker runs that step itself, without a trip through the broker.
	"""
	queues = _consumed_queues(self)
	with transaction.atomic():
		if not sql.take_timer(run_id, key, purpose, due_by=timezone.now() + timedelta(milliseconds=50)):
			return
		result = advance(run_id, TimerFired(key, purpose), continue_on=queues)
	if result.continued is not None:
		StepExecutor(str(result.continued.pk)).run_claimed(result.continued, queue=result.continued.queue)


def _consumed_queues(task: Task) -> frozenset[str]:
	"""The queues the worker running ``task`` consumes: none when the task runs eagerly, or
	inside its caller's transaction (a continued step runs once the transition that claimed
	it has committed)."""
	if task.request.is_eager or transaction.get_connection().in_atomic_block:
		return frozenset()
	return frozenset(task.app.amqp.queues.consume_from or ())


@shared_task(name="apg.sweep_timers", bind=True, ignore_result=True)
def sweep_timers_task(self: Task, limit: int = 1000) -> int:
	"""Fire due timers, each in its own transaction; a timer is taken once, so sweepers never overlap.

	As with :func:`fire_timer_task`, the step a timer leads to runs here when this worker
	consumes its queue, right after the transition commits: in a burst, when the countdowns
	are late and the sweep fires most timers, no step goes through the broker again.
	"""
	queues = _consumed_queues(self)
	fired = 0
	while fired < limit:
		with transaction.atomic():
			taken = sql.take_due_timer(timezone.now())
			if taken is None:
				break
			run_id, key, purpose = taken
			result = advance(run_id, TimerFired(key, purpose), continue_on=queues)
		fired += 1
		if result.continued is not None:
			StepExecutor(str(result.continued.pk)).run_claimed(result.continued, queue=result.continued.queue)
	return fired


BROKER_EPOCH_KEY = "apg:broker-epoch"


def broker_epoch() -> datetime | None:
	"""Since when the broker holds the messages it has: None for a broker that cannot tell.

	A Redis broker keeps the time its data began under ``apg:broker-epoch`` (set when
	missing). A Redis that restarted without its data has lost every message sent before,
	and comes back without the key, so the next sweep starts a new epoch: steps dispatched
	before it are known lost. A step dispatched since is still in the queue, however long the
	queue is, and is not sent twice.
	"""
	from config.celery import app as celery_app

	url = str(celery_app.conf.broker_url or "")
	if not url.startswith(("redis://", "rediss://")):
		return None
	import redis

	client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
	try:
		client.set(BROKER_EPOCH_KEY, repr(time.time()), nx=True)
		value = client.get(BROKER_EPOCH_KEY)
	finally:
		client.close()
	assert value is not None, "the broker epoch was just set"
	return datetime.fromtimestamp(float(value), tz=UTC)


@shared_task(name="apg.reap_steps", ignore_result=True)
def reap_steps_task() -> int:
	"""Dispatch again the steps of dead workers (lease expired) and steps whose message was lost.

	A step still ``scheduled`` was lost if it was dispatched before the broker's current
	epoch (:func:`broker_epoch`), or, whatever the broker, if it has waited longer than any
	message can stay unacknowledged (the visibility timeout) plus ``STEP_REDISPATCH_SECONDS``.
	For a broker that keeps no epoch, ``STEP_REDISPATCH_SECONDS`` alone decides. A step that
	merely waits in a long queue is never sent twice.
	"""
	now = timezone.now()
	epoch = broker_epoch()
	redispatch = timedelta(seconds=settings.STEP_REDISPATCH_SECONDS)
	if epoch is None:
		lost_filter = Q(scheduled_at__lt=now - redispatch)
	else:
		visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", 3600)
		lost_filter = Q(scheduled_at__lt=epoch) | Q(
			scheduled_at__lt=now - redispatch - timedelta(seconds=visibility)
		)
	reaped = 0
	with transaction.atomic():
		dead = list(
			StepRun.objects._unfiltered()
			.select_for_update(skip_locked=True)
			.filter(status=StepStatus.RUNNING, lease_expires_at__lt=now)[:500]
		)
		lost = list(
			StepRun.objects._unfiltered()
			.select_for_update(skip_locked=True)
			.filter(lost_filter, status=StepStatus.SCHEDULED)[:500]
		)
		for step in dead + lost:
			StepRun.objects._unfiltered().filter(pk=step.pk).update(
				status=StepStatus.SCHEDULED, lease_expires_at=None, scheduled_at=now, worker=""
			)
		ids = [(str(s.pk), s.queue or "steps", s.run_id) for s in dead + lost]
		priorities = dict(
			Run.objects._unfiltered().filter(pk__in={r for _, _, r in ids}).values_list("pk", "priority")
		)

		def send() -> None:
			from workflows.engine.effects import dispatch_steps

			for step_id, queue, run_id in ids:
				dispatch_steps([(step_id, queue)], priority=priorities.get(run_id, 5))

		transaction.on_commit(send)
		reaped = len(ids)
	if reaped:
		logger.warning(
			"reaper dispatched %s step(s) again (%s dead leases, %s lost messages)",
			reaped,
			len(dead),
			len(lost),
		)
	return reaped


@shared_task(name="apg.sweep_events", ignore_result=True)
def sweep_events_task() -> int:
	"""Delete kept events past their retention (see the event retention policy)."""
	horizon = timezone.now() - timedelta(seconds=settings.EVENT_RETENTION_SECONDS)
	deleted, _ = Event.objects._unfiltered().filter(created_at__lt=horizon).delete()
	return deleted


@shared_task(name="apg.notify_approval", ignore_result=True)
def notify_approval_task(run_id: str, key: str) -> None:
	"""Announce an open (or escalated) approval to its assignees' live inbox."""
	from workflows.engine.effects import live, tenant_group

	approval = Approval.objects._unfiltered().filter(run_id=run_id, key=key).first()
	if approval is None:
		return
	live.send(
		tenant_group(approval.tenant_id),
		{
			"type": "tenant.events",
			"events": [
				{
					"run": run_id,
					"type": "approval.open",
					"step": key,
					"data": {
						"approval": str(approval.pk),
						"title": approval.title,
						"role": approval.role,
						"assignees": approval.assignees,
					},
				}
			],
		},
	)


def fire_due_cron_triggers(*, now: datetime, limit: int = 1000) -> int:
	"""Fire the due cron triggers of every tenant as of ``now``; the number of runs started.

	Each trigger is fired in its own transaction under its row lock, taken with
	``skip_locked``: two beats sweeping side by side each skip what the other holds, and the
	holder moves ``next_fire_at`` past what it fired before committing, so no occurrence
	fires twice.
	"""
	started = 0
	for _ in range(limit):
		with transaction.atomic():
			trigger = (
				Trigger.objects._unfiltered()
				.select_for_update(skip_locked=True, of=("self",))
				.filter(
					kind=TriggerKind.CRON,
					enabled=True,
					deleted_at__isnull=True,
					next_fire_at__lte=now,
					tenant__is_active=True,
					workflow__deleted_at__isnull=True,
				)
				.order_by("next_fire_at")
				.first()
			)
			if trigger is None:
				break
			started += len(cron_trigger_fire(trigger=trigger, now=now))
	return started


@shared_task(name="apg.fire_cron_triggers", ignore_result=True)
def fire_cron_triggers_task(limit: int = 1000) -> int:
	"""Fire due cron triggers (every 5 s from beat; any number of beats may run)."""
	return fire_due_cron_triggers(now=timezone.now(), limit=limit)


@shared_task(name="apg.start_event_triggers", acks_late=True, ignore_result=True)
def start_event_triggers_task(event_id: str) -> int:
	"""Start the runs of the event triggers a published event matches (once per trigger and event)."""
	event = Event.objects._unfiltered().select_related("tenant").filter(pk=event_id).first()
	if event is None or not event.tenant.is_active:
		return 0
	return len(event_triggers_start(event=event))


from workflows import webhook_tasks  # noqa: E402, F401 - registers the outgoing-webhook tasks
