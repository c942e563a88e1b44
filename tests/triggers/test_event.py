"""Event triggers: a published event starts the runs whose trigger matches its type and filter."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from workflows.engine.status import RunStatus
from workflows.models import Event, Run, Tenant, User, Workflow
from workflows.roles import Role
from workflows.services.runs import event_publish
from workflows.services.triggers import IssuedTrigger, event_triggers_start, trigger_disable
from workflows.tasks import start_event_triggers_task

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager")]


def event_runs(tenant: Tenant) -> list[Run]:
	return list(Run.objects.for_tenant(tenant).filter(trigger_kind="event").order_by("created_at"))


@pytest.fixture
def emit(tenant: Tenant, owner: User, settle: Callable[..., Any]) -> Callable[..., Any]:
	"""Publish an event as the owner, with after-commit work (the trigger task) carried out."""

	def publish(type_: str = "order.paid", **kwargs: Any) -> Any:
		return settle(event_publish, actor=owner, tenant=tenant, type=type_, **kwargs)

	return publish


def test_an_event_starts_a_run_only_when_the_filter_is_true(
	make_trigger: Callable[..., IssuedTrigger], emit: Callable[..., Any], tenant: Tenant
) -> None:
	trigger = make_trigger(
		kind="event", event_type="order.paid", filter=".event.payload.amount > 100"
	).trigger

	small = emit(payload={"order": "S-1", "amount": 50})
	big = emit(payload={"order": "B-1", "amount": 150})

	[run] = event_runs(tenant)
	assert run.input == {"order": "B-1", "amount": 150}
	assert run.status == RunStatus.SUCCEEDED
	assert run.trigger_ref == f"{trigger.pk}:{big.event.pk}"
	assert (small.started, big.started) == (1, 1)  # both were handed to the one trigger


def test_without_a_filter_every_event_of_the_type_starts_a_run_and_other_types_none(
	make_trigger: Callable[..., IssuedTrigger], emit: Callable[..., Any], tenant: Tenant
) -> None:
	make_trigger(kind="event", event_type="order.paid")

	paid = [emit(payload={"order": f"P-{i}"}) for i in range(2)]
	refunded = emit("order.refunded", payload={"order": "R-1"})

	assert [r.input["order"] for r in event_runs(tenant)] == ["P-0", "P-1"]
	assert [o.started for o in paid] == [1, 1]
	assert refunded.started == 0


def test_the_input_template_sees_the_event(
	make_trigger: Callable[..., IssuedTrigger], emit: Callable[..., Any], tenant: Tenant
) -> None:
	make_trigger(
		kind="event",
		input={
			"order": "${ .event.correlation }",
			"amount": "${ .payload.total }",
			"note": "${ .event.type } from ${ .event.source } (${ .event.id })",
		},
	)

	outcome = emit(correlation="C-9", payload={"total": 7})

	[run] = event_runs(tenant)
	assert run.input == {
		"order": "C-9",
		"amount": 7,
		"note": f"order.paid from api ({outcome.event.pk})",
	}


def test_several_triggers_each_start_their_own_run(
	make_trigger: Callable[..., IssuedTrigger],
	emit: Callable[..., Any],
	tenant: Tenant,
	publish: Callable[..., Workflow],
) -> None:
	from tests.triggers.conftest import order_flow

	second = publish(order_flow(), name="Fulfilment")
	make_trigger(kind="event", name="billing")
	make_trigger(kind="event", name="fulfilment", workflow=second)

	outcome = emit(payload={"order": "M-1"})

	assert outcome.started == 2
	assert sorted(r.workflow.name for r in event_runs(tenant)) == ["Fulfilment", "Orders"]


def test_a_failing_filter_is_logged_as_no_match_and_crashes_nothing(
	make_trigger: Callable[..., IssuedTrigger],
	emit: Callable[..., Any],
	tenant: Tenant,
	caplog: pytest.LogCaptureFixture,
) -> None:
	make_trigger(
		kind="event", name="fragile", filter='if .event.payload.fail then error("boom") else true end'
	)
	make_trigger(kind="event", name="says yes", filter='"yes"')
	steady = make_trigger(kind="event", name="steady").trigger

	with caplog.at_level(logging.WARNING, logger="apg.triggers"):
		outcome = emit(payload={"order": "F-1", "fail": True})

	assert outcome.delivered == 0
	assert [r.trigger_ref.split(":")[0] for r in event_runs(tenant)] == [str(steady.pk)]
	assert "filter failed" in caplog.text
	assert "boom" in caplog.text


def test_a_run_that_cannot_start_is_skipped_and_the_others_start(
	make_trigger: Callable[..., IssuedTrigger],
	emit: Callable[..., Any],
	tenant: Tenant,
	caplog: pytest.LogCaptureFixture,
) -> None:
	broken = make_trigger(kind="event", name="never valid", input={"order": "${ .payload.missing }"}).trigger
	make_trigger(kind="event", name="lower-cases", input={"order": "${ .payload.order | ascii_downcase }"})
	make_trigger(kind="event", name="as it is")

	with caplog.at_level(logging.WARNING, logger="apg.triggers"):
		emit(payload={"order": 5})  # a number: breaks the schema for two, the template for one
		nothing = event_runs(tenant)
		emit(payload={"order": "OK-1"})

	assert nothing == []
	assert sorted(r.input["order"] for r in event_runs(tenant)) == ["OK-1", "ok-1"]
	assert caplog.text.count("could not start a run") == 4
	assert caplog.text.count(f"trigger {broken.pk} could not start a run") == 2


def test_a_redelivered_task_starts_nothing_twice(
	make_trigger: Callable[..., IssuedTrigger], emit: Callable[..., Any], tenant: Tenant
) -> None:
	make_trigger(kind="event")
	outcome = emit(payload={"order": "D-1"})

	again = start_event_triggers_task(str(outcome.event.pk))

	assert again == 0
	assert len(event_runs(tenant)) == 1


def test_disabled_triggers_and_swept_events_start_nothing(
	make_trigger: Callable[..., IssuedTrigger], emit: Callable[..., Any], owner: User, tenant: Tenant
) -> None:
	trigger = make_trigger(kind="event").trigger
	trigger_disable(actor=owner, trigger=trigger)

	outcome = emit(payload={"order": "X-1"})
	gone = start_event_triggers_task("0190c6a8-0000-7000-8000-000000000000")

	assert outcome.started == 0
	assert gone == 0
	assert event_runs(tenant) == []


def test_an_event_deleted_before_its_task_ran_starts_nothing(
	make_trigger: Callable[..., IssuedTrigger], tenant: Tenant, owner: User
) -> None:
	make_trigger(kind="event")
	outcome = event_publish(actor=owner, tenant=tenant, type="order.paid", payload={"order": "V-1"})
	Event.objects.for_tenant(tenant).filter(pk=outcome.event.pk).delete()  # the retention sweep won the race

	assert event_triggers_start(event=outcome.event) == []
	assert event_runs(tenant) == []


def test_an_event_of_another_tenant_starts_nothing_here(
	make_trigger: Callable[..., IssuedTrigger],
	tenant: Tenant,
	tenant_factory: Callable[..., Tenant],
	member_factory: Callable[..., User],
	settle: Callable[..., Any],
) -> None:
	make_trigger(kind="event")
	elsewhere = tenant_factory()
	operator = member_factory(elsewhere, Role.OPERATOR)

	outcome = settle(
		event_publish, actor=operator, tenant=elsewhere, type="order.paid", payload={"order": "Z"}
	)

	assert outcome.started == 0
	assert event_runs(tenant) == []


def test_events_of_an_inactive_tenant_start_nothing(
	make_trigger: Callable[..., IssuedTrigger], tenant: Tenant, owner: User
) -> None:
	make_trigger(kind="event")
	outcome = event_publish(actor=owner, tenant=tenant, type="order.paid", payload={"order": "I-1"})
	tenant.is_active = False
	tenant.save()

	assert start_event_triggers_task(str(outcome.event.pk)) == 0
	assert event_runs(tenant) == []


def test_a_long_correlation_cut_at_500_characters_still_reaches_the_template(
	make_trigger: Callable[..., IssuedTrigger], emit: Callable[..., Any], tenant: Tenant
) -> None:
	make_trigger(kind="event", input={"order": "${ .event.correlation | .[0:5] }"})

	emit(correlation="K" * 600, payload={})

	[run] = event_runs(tenant)
	assert run.input == {"order": '"KKKK'}
	assert Event.objects.for_tenant(tenant).get().correlation.startswith('"KKK')
