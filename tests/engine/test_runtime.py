"""The engine against the database: runs, steps, events, timers, approvals, events, limits, recovery."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from tests.engine.harness import END, START, definition, linear, node, task
from workflows.context import tenant_scope
from workflows.engine.status import RunStatus, StepStatus
from workflows.errors import Conflict, PermissionDenied, ValidationFailed
from workflows.models import (
	Approval,
	AuditEvent,
	Event,
	Run,
	RunEvent,
	StepRun,
	Tenant,
	Timer,
	User,
	Workflow,
)
from workflows.roles import Perm, Role
from workflows.services.runs import (
	approval_decide,
	event_publish,
	run_cancel,
	run_pause,
	run_rerun,
	run_resume,
	run_retry,
	run_start,
)
from workflows.services.tenancy import object_soft_delete
from workflows.tasks import execute_step_task, reap_steps_task, sweep_events_task, sweep_timers_task

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager")]


def fetch(run: Run) -> Run:
	return Run.objects.for_tenant(run.tenant).get(pk=run.pk)


def steps(run: Run) -> list[StepRun]:
	return list(
		StepRun.objects.for_tenant(run.tenant).filter(run=run).order_by("created_at", "key", "attempt")
	)


def events(run: Run) -> list[RunEvent]:
	return list(RunEvent.objects.for_tenant(run.tenant).filter(run=run).order_by("seq"))


def fire_due_timers(run: Run, settle: Callable[..., Any]) -> None:
	with tenant_scope(run.tenant):
		Timer.objects.filter(run=run).update(fire_at=timezone.now() - timedelta(seconds=1))
	settle(sweep_timers_task)


def test_a_run_executes_its_steps_and_records_everything(
	publish: Callable[..., Workflow], owner: User, settle: Callable[..., Any]
) -> None:
	workflow = publish(
		linear(
			task(
				"greet",
				"transform.jq",
				input={"expression": '"hello " + .name', "data": {"name": "${ .input.name }"}},
			),
			task("idle", "noop.noop"),
			input_schema={"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}},
		)
	)

	run = fetch(settle(run_start, actor=owner, workflow=workflow, input={"name": "Ada"}, tags=["demo"]))

	assert run.status == RunStatus.SUCCEEDED
	assert run.output == {}
	recorded = {s.key: s for s in steps(run)}
	assert recorded["root:greet"].output == {"result": "hello Ada"}
	assert recorded["root:greet"].status == StepStatus.SUCCEEDED
	assert recorded["root:greet"].dispatch["idempotency_key"] == f"{run.pk}:root:greet:1"
	assert recorded["root:greet"].started_at is not None
	seqs = [e.seq for e in events(run)]
	assert seqs == list(range(1, len(seqs) + 1))
	assert events(run)[-1].type == "run.succeeded"
	assert run.started_at is not None
	assert run.finished_at is not None
	assert (
		AuditEvent.objects.for_tenant(run.tenant).filter(action="run.start", object_id=str(run.pk)).count()
		== 1
	)


def test_input_that_breaks_the_schema_is_refused_and_creates_no_run(
	publish: Callable[..., Workflow], owner: User
) -> None:
	workflow = publish(
		linear(
			task("a"),
			input_schema={
				"type": "object",
				"required": ["amount"],
				"properties": {"amount": {"type": "number", "minimum": 0}},
			},
		)
	)

	with pytest.raises(ValidationFailed) as caught:
		run_start(actor=owner, workflow=workflow, input={"amount": -5, "extra": 1})
	with pytest.raises(ValidationFailed) as missing:
		run_start(actor=owner, workflow=workflow, input={})

	assert caught.value.errors[0].pointer == "/input/amount"
	assert "minimum" in caught.value.errors[0].message
	assert missing.value.errors[0].pointer == "/input"
	assert not Run.objects.for_tenant(workflow.tenant).exists()


def test_starting_needs_a_published_unarchived_workflow_and_a_valid_priority(
	tenant: Tenant, owner: User, publish: Callable[..., Workflow], member_factory: Callable[..., User]
) -> None:
	from workflows.services.definitions import workflow_archive, workflow_create

	draft_only = workflow_create(actor=owner, tenant=tenant, name="Draft only")
	published = publish(linear(task("a")), name="Published")
	viewer = member_factory(tenant, Role.VIEWER)

	with pytest.raises(Conflict, match="no published version"):
		run_start(actor=owner, workflow=draft_only)
	with pytest.raises(ValidationFailed, match="0 to 9"):
		run_start(actor=owner, workflow=published, priority=12)
	with pytest.raises(PermissionDenied):
		run_start(actor=viewer, workflow=published)
	workflow_archive(actor=owner, workflow=published)
	with pytest.raises(Conflict, match="archived"):
		run_start(actor=owner, workflow=published)


def test_a_delivered_twice_step_is_recorded_once(
	publish: Callable[..., Workflow], owner: User, settle: Callable[..., Any]
) -> None:
	workflow = publish(linear(task("a"), task("b")))
	run = settle(run_start, actor=owner, workflow=workflow)
	first = next(s for s in steps(run) if s.key == "root:a")

	settle(execute_step_task, str(first.pk))
	settle(execute_step_task, str(first.pk))

	assert fetch(run).status == RunStatus.SUCCEEDED
	assert len([s for s in steps(run) if s.key == "root:a"]) == 1
	assert [e.type for e in events(run)].count("run.succeeded") == 1


def test_retries_wait_on_timers_and_the_run_recovers(
	publish: Callable[..., Workflow], owner: User, settle: Callable[..., Any]
) -> None:
	workflow = publish(
		linear(
			task(
				"flaky",
				"fail.fail",
				input={"code": "busy", "message": "try later", "retryable": True},
				retry={"max_attempts": 2, "initial_interval_seconds": 120},
			)
		)
	)

	run = settle(run_start, actor=owner, workflow=workflow)
	waiting = fetch(run)
	timers = list(Timer.objects.for_tenant(run.tenant).filter(run=run))
	fire_due_timers(run, settle)
	failed = fetch(run)

	assert waiting.status == RunStatus.WAITING
	assert [(t.key, t.purpose) for t in timers] == [("root:flaky", "retry")]
	assert failed.status == RunStatus.FAILED
	assert [s.attempt for s in steps(run) if s.key == "root:flaky"] == [1, 2]
	assert "gave up after 2 attempts" in failed.error["message"]


def test_wait_nodes_hold_no_worker_and_resume_from_the_sweep(
	publish: Callable[..., Workflow], owner: User, settle: Callable[..., Any]
) -> None:
	workflow = publish(linear(node("nap", "wait", duration="PT1H"), task("after")))

	run = settle(run_start, actor=owner, workflow=workflow)
	before = fetch(run).status
	not_due = settle(sweep_timers_task)
	fire_due_timers(run, settle)

	assert before == RunStatus.WAITING
	assert not_due == 0
	assert fetch(run).status == RunStatus.SUCCEEDED


def test_approvals_through_the_service(
	tenant: Tenant,
	publish: Callable[..., Workflow],
	owner: User,
	member_factory: Callable[..., User],
	settle: Callable[..., Any],
) -> None:
	doc = definition(
		[
			START,
			node(
				"review",
				"approval",
				role="operator",
				form_schema={
					"type": "object",
					"required": ["budget"],
					"properties": {"budget": {"type": "integer"}},
				},
			),
			node("ok", "set", values="${ .steps.review.output.data.budget }"),
			node("no", "set", values="no"),
			END,
		],
		[
			("start", "review"),
			("review", "ok", "approved"),
			("review", "no", "rejected"),
			("ok", "end"),
			("no", "end"),
		],
	)
	workflow = publish(doc)
	operator = member_factory(tenant, Role.OPERATOR)
	editor = member_factory(tenant, Role.EDITOR)
	run = settle(run_start, actor=owner, workflow=workflow)
	approval = Approval.objects.for_tenant(tenant).get(run=run)

	with pytest.raises(PermissionDenied):
		approval_decide(actor=editor, approval=approval, decision="approved", data={"budget": 1})
	with pytest.raises(ValidationFailed) as bad_form:
		approval_decide(actor=operator, approval=approval, decision="approved", data={"budget": "lots"})
	decided = settle(
		approval_decide,
		actor=operator,
		approval=approval,
		decision="approved",
		comment="fine",
		data={"budget": 500},
	)
	with pytest.raises(Conflict, match="already approved"):
		approval_decide(actor=owner, approval=approval, decision="rejected")

	assert bad_form.value.errors[0].pointer == "/data/budget"
	assert (decided.status, decided.decided_by, decided.comment) == ("approved", operator, "fine")
	assert fetch(run).status == RunStatus.SUCCEEDED
	assert fetch(run).output == 500


def _event_doc() -> dict[str, Any]:
	return linear(
		node(
			"paid",
			"wait_for_event",
			event_type="order.paid",
			correlation="${ .input.order }",
			timeout_seconds=3600,
		)
	)


def test_events_reach_the_waiting_run_by_correlation(
	tenant: Tenant, publish: Callable[..., Workflow], owner: User, settle: Callable[..., Any]
) -> None:
	workflow = publish(_event_doc())
	run = settle(run_start, actor=owner, workflow=workflow, input={"order": "A-1"})

	other = settle(
		event_publish, actor=owner, tenant=tenant, type="order.paid", correlation="B-2", payload={"amount": 1}
	)
	waiting = fetch(run).status
	mine = settle(
		event_publish,
		actor=owner,
		tenant=tenant,
		type="order.paid",
		correlation="A-1",
		payload={"amount": 42},
	)

	assert (other.delivered, other.kept) == (0, True)
	assert waiting == RunStatus.WAITING
	assert (mine.delivered, mine.kept) == (1, False)
	assert fetch(run).status == RunStatus.SUCCEEDED
	assert fetch(run).output["payload"] == {"amount": 42}
	assert not Timer.objects.for_tenant(tenant).filter(run=run).exists()


def test_an_event_for_many_runs_reaches_them_all_even_if_one_delivery_fails(
	tenant: Tenant,
	publish: Callable[..., Workflow],
	owner: User,
	settle: Callable[..., Any],
	monkeypatch: pytest.MonkeyPatch,
	caplog: pytest.LogCaptureFixture,
) -> None:
	from workflows.engine import runtime
	from workflows.services import runs as run_services

	monkeypatch.setattr(run_services, "INLINE_EVENT_DELIVERIES", 3)
	workflow = publish(_event_doc())
	waiting = [settle(run_start, actor=owner, workflow=workflow, input={"order": "same"}) for _ in range(5)]
	broken = min(waiting, key=lambda r: str(r.pk))
	real_advance = runtime.advance

	def flaky(run_id: Any, happening: Any, **kwargs: Any) -> Any:
		if str(run_id) == str(broken.pk):
			raise RuntimeError("the database hiccuped")
		return real_advance(run_id, happening, **kwargs)

	monkeypatch.setattr(run_services, "advance", flaky)  # inline deliveries only; tasks use the real one

	outcome = settle(event_publish, actor=owner, tenant=tenant, type="order.paid", correlation="same")

	assert outcome.delivered == 5
	assert [fetch(r).status for r in waiting] == [RunStatus.SUCCEEDED] * 5
	# The first pass, without savepoints, was taken back whole: published again, the event is stored once.
	assert "publishing again with each event and run in a savepoint" in caplog.text
	assert f"delivering an event to run {broken.pk} failed" in caplog.text
	assert Event.objects.for_tenant(tenant).filter(type="order.paid").count() == 1


def test_an_event_published_just_before_the_wait_starts_is_not_lost(
	tenant: Tenant, publish: Callable[..., Workflow], owner: User, settle: Callable[..., Any]
) -> None:
	workflow = publish(_event_doc())

	settle(
		event_publish,
		actor=owner,
		tenant=tenant,
		type="order.paid",
		correlation="EARLY",
		payload={"amount": 7},
	)
	run = settle(run_start, actor=owner, workflow=workflow, input={"order": "EARLY"})

	assert fetch(run).status == RunStatus.SUCCEEDED
	assert Event.objects.for_tenant(tenant).get(correlation='"EARLY"').consumed_at is not None


def test_events_past_retention_are_swept(tenant: Tenant, owner: User, settings: Any) -> None:
	event_publish(actor=owner, tenant=tenant, type="x", correlation=1)
	with tenant_scope(tenant):
		Event.objects.update(created_at=timezone.now() - timedelta(days=2))

	assert sweep_events_task() == 1


def test_an_event_for_nobody_is_kept_and_bad_events_are_refused(tenant: Tenant, owner: User) -> None:
	outcome = event_publish(actor=owner, tenant=tenant, type="nobody.cares", payload={"x": 1})

	assert outcome.kept
	with pytest.raises(ValidationFailed, match="type"):
		event_publish(actor=owner, tenant=tenant, type="")


def test_sub_workflow_parent_waits_for_the_child_run(
	publish: Callable[..., Workflow], owner: User, settle: Callable[..., Any]
) -> None:
	publish(linear(node("double", "set", values="${ .input.n * 2 }")), name="Child", slug="child")
	parent = publish(
		linear(node("call", "sub_workflow", workflow="child", input={"n": "${ .input.n }"})), name="Parent"
	)

	run = settle(run_start, actor=owner, workflow=parent, input={"n": 21})
	child = Run.objects.for_tenant(run.tenant).get(parent_run=run)

	assert fetch(run).status == RunStatus.SUCCEEDED
	assert fetch(run).output == 42
	assert (child.status, child.trigger_kind, child.parent_step_key) == (
		RunStatus.SUCCEEDED,
		"sub_workflow",
		"root:call",
	)


def test_a_missing_sub_workflow_fails_the_step_clearly(
	publish: Callable[..., Workflow], owner: User, settle: Callable[..., Any]
) -> None:
	child = publish(linear(node("double", "set", values=1)), name="Child", slug="child")
	parent = publish(linear(node("call", "sub_workflow", workflow="child")), name="Parent")
	object_soft_delete(
		actor=owner, obj=child, perm=Perm.WORKFLOW_DELETE
	)  # deleted after the parent was published

	run = fetch(settle(run_start, actor=owner, workflow=parent))

	assert run.status == RunStatus.FAILED
	assert run.error["code"] == "sub_workflow_not_found"


def test_cancel_pause_resume_retry_and_rerun(
	tenant: Tenant,
	publish: Callable[..., Workflow],
	owner: User,
	member_factory: Callable[..., User],
	settle: Callable[..., Any],
) -> None:
	waiting = publish(linear(node("nap", "wait", duration="PT1H")), name="Waits")
	failing = publish(linear(task("boom", "fail.fail", input={"code": "nope"})), name="Fails")
	editor = member_factory(tenant, Role.EDITOR)

	run = settle(run_start, actor=owner, workflow=waiting)
	with pytest.raises(PermissionDenied):
		run_pause(actor=editor, run=run)
	paused = settle(run_pause, actor=owner, run=run).status
	resumed = settle(run_resume, actor=owner, run=run).status
	with pytest.raises(Conflict, match="not paused"):
		run_resume(actor=owner, run=run)
	cancelled = settle(run_cancel, actor=owner, run=run)
	with pytest.raises(Conflict, match="Cannot cancel: the run is cancelled"):
		run_cancel(actor=owner, run=run)
	failed = settle(run_start, actor=owner, workflow=failing)
	retried = fetch(settle(run_retry, actor=owner, run=failed))
	again = settle(run_rerun, actor=owner, run=failed)
	with pytest.raises(Conflict, match="only failed runs"):
		run_retry(actor=owner, run=cancelled)

	assert (paused, resumed) == (RunStatus.PAUSED, RunStatus.WAITING)
	assert cancelled.status == RunStatus.CANCELLED
	assert not Timer.objects.for_tenant(tenant).filter(run=run).exists()
	assert retried.status == RunStatus.FAILED
	assert [s.attempt for s in steps(retried) if s.key == "root:boom"] == [1, 2]
	assert again.pk != failed.pk
	assert again.input == failed.input
	actions = set(AuditEvent.objects.for_tenant(tenant).values_list("action", flat=True))
	assert {"run.pause", "run.resume", "run.cancel", "run.retry"} <= actions


def test_concurrency_limit_queues_runs_and_admits_by_priority(
	publish: Callable[..., Workflow], owner: User, settle: Callable[..., Any]
) -> None:
	workflow = publish(linear(node("nap", "wait", duration="PT1H"), defaults={"concurrency_limit": 1}))

	first = settle(run_start, actor=owner, workflow=workflow)
	low = settle(run_start, actor=owner, workflow=workflow, priority=1)
	high = settle(run_start, actor=owner, workflow=workflow, priority=9)
	queued = (fetch(low).status, fetch(high).status)
	settle(run_cancel, actor=owner, run=first)

	assert queued == (RunStatus.PENDING, RunStatus.PENDING)
	assert fetch(high).status == RunStatus.WAITING
	assert fetch(low).status == RunStatus.PENDING


def test_the_reaper_redispatches_steps_of_dead_workers(
	publish: Callable[..., Workflow],
	owner: User,
	settle: Callable[..., Any],
	django_capture_on_commit_callbacks: Any,
) -> None:
	workflow = publish(linear(task("a")))
	with django_capture_on_commit_callbacks(execute=False):  # the dispatch is lost
		run = run_start(actor=owner, workflow=workflow)
	step = steps(run)[-1]
	with tenant_scope(run.tenant):
		StepRun.objects.filter(pk=step.pk).update(
			status=StepStatus.RUNNING,
			lease_expires_at=timezone.now() - timedelta(seconds=5),
			worker="dead-host",
		)

	reaped = settle(reap_steps_task)

	assert reaped == 1
	assert fetch(run).status == RunStatus.SUCCEEDED
	assert len([s for s in steps(run) if s.key == "root:a"]) == 1


def test_a_runaway_expression_fails_its_step_and_the_run_goes_on_failing_cleanly(
	publish: Callable[..., Workflow], owner: User, settle: Callable[..., Any], settings: Any
) -> None:
	settings.ENGINE_EXPRESSION_TIMEOUT = 0.3
	workflow = publish(linear(node("spin", "set", values="${ [limit(100000000000; repeat(1))] | length }")))

	run = fetch(settle(run_start, actor=owner, workflow=workflow))

	assert run.status == RunStatus.FAILED
	assert run.error["code"] == "expression_error"
	assert "node 'spin'" in run.error["message"]
	assert "stopped" in run.error["message"] or "longer than" in run.error["message"]
