"""Managing triggers: create, validate, update, enable and disable, delete, rotate; cron previews and DST."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from workflows.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from workflows.models import AuditEvent, Tenant, Trigger, User, Workflow
from workflows.roles import Role
from workflows.services.definitions import workflow_create
from workflows.services.triggers import (
	IssuedTrigger,
	cron_preview,
	trigger_delete,
	trigger_disable,
	trigger_enable,
	trigger_rotate_secret,
	trigger_update,
)

pytestmark = pytest.mark.django_db

PARIS = ZoneInfo("Europe/Paris")


def pointers(caught: pytest.ExceptionInfo[ValidationFailed]) -> list[str]:
	return [e.pointer for e in caught.value.errors]


def audit_actions(tenant: Tenant, trigger: Trigger) -> list[str]:
	return list(
		AuditEvent.objects.for_tenant(tenant)
		.filter(object_id=str(trigger.pk))
		.order_by("occurred_at")
		.values_list("action", flat=True)
	)


# --- create -----------------------------------------------------------------------------------


def test_a_cron_trigger_is_scheduled_for_its_next_occurrence(
	make_trigger: Callable[..., IssuedTrigger], tenant: Tenant
) -> None:
	before = timezone.now()

	issued = make_trigger(
		cron_expression="*/5 * * * *", timezone="Europe/Paris", missed_fire_policy="fire_all"
	)

	trigger = issued.trigger
	assert issued.secret is None
	assert trigger.next_fire_at is not None
	assert before < trigger.next_fire_at <= before + timedelta(minutes=5)
	assert trigger.next_fire_at.minute % 5 == 0
	assert trigger.next_fire_at.second == 0
	assert audit_actions(tenant, trigger) == ["trigger.create"]


def test_a_webhook_trigger_gets_a_url_token_and_a_secret_shown_once(
	make_trigger: Callable[..., IssuedTrigger], tenant: Tenant
) -> None:
	issued = make_trigger(kind="webhook", input={"order": "${ .payload.id }"})

	trigger = issued.trigger
	assert issued.secret is not None
	assert issued.secret.startswith("whsec_")
	assert len(issued.secret) > 40
	assert trigger.token.startswith(tenant.pk.hex + "-")
	assert trigger.next_fire_at is None
	audit = AuditEvent.objects.for_tenant(tenant).get(object_id=str(trigger.pk))
	assert issued.secret not in json.dumps(audit.changes)
	assert trigger.token in json.dumps(audit.changes)


def test_two_webhook_triggers_never_share_a_url_or_a_secret(
	make_trigger: Callable[..., IssuedTrigger],
) -> None:
	first, second = make_trigger(kind="webhook"), make_trigger(kind="webhook")

	assert first.trigger.token != second.trigger.token
	assert first.secret != second.secret


def test_every_problem_with_a_cron_trigger_is_reported_at_once(
	make_trigger: Callable[..., IssuedTrigger], tenant: Tenant
) -> None:
	with pytest.raises(ValidationFailed) as caught:
		make_trigger(
			name=" ",
			cron_expression="61 * * * *",
			timezone="Mars/Olympus",
			missed_fire_policy="sometimes",
			priority=12,
			event_type="order.paid",
		)

	assert sorted(pointers(caught)) == [
		"/cron_expression",
		"/event_type",
		"/missed_fire_policy",
		"/name",
		"/priority",
		"/timezone",
	]
	assert all(e.hint for e in caught.value.errors)
	assert not Trigger.objects.for_tenant(tenant).exists()


@pytest.mark.parametrize(
	("expression", "message"),
	[
		("", "required"),
		("* * * * * *", "has 6 fields"),
		("0 0 30 2 *", "never fires"),
		("every day", "has 2 fields"),
		("0 25 * * *", "not a valid cron expression"),
	],
)
def test_a_bad_cron_expression_is_refused_with_a_hint(
	make_trigger: Callable[..., IssuedTrigger], expression: str, message: str
) -> None:
	with pytest.raises(ValidationFailed) as caught:
		make_trigger(cron_expression=expression)

	assert pointers(caught) == ["/cron_expression"]
	assert message in caught.value.errors[0].message
	assert caught.value.errors[0].hint


def test_cron_macros_are_understood(make_trigger: Callable[..., IssuedTrigger]) -> None:
	trigger = make_trigger(cron_expression="@hourly").trigger

	assert trigger.cron_expression == "@hourly"
	assert trigger.next_fire_at is not None
	assert (trigger.next_fire_at.minute, trigger.next_fire_at.second) == (0, 0)


def test_a_cron_input_is_checked_against_the_workflow_input_schema(
	make_trigger: Callable[..., IssuedTrigger],
) -> None:
	with pytest.raises(ValidationFailed) as wrong_type:
		make_trigger(input={"order": 7})
	with pytest.raises(ValidationFailed) as missing:
		make_trigger(input={})
	with pytest.raises(ValidationFailed) as not_json:
		make_trigger(input={"order": "x", "amount": float("nan")})

	assert pointers(wrong_type) == ["/input/order"]
	assert pointers(missing) == ["/input"]
	assert pointers(not_json) == ["/input"]
	assert "JSON" in not_json.value.errors[0].message


def test_webhook_and_event_templates_and_filters_must_compile(
	make_trigger: Callable[..., IssuedTrigger],
) -> None:
	with pytest.raises(ValidationFailed) as template:
		make_trigger(kind="webhook", input={"order": "${ .payload | }"})
	with pytest.raises(ValidationFailed) as not_json:
		make_trigger(kind="webhook", input={"order": {1, 2}})
	with pytest.raises(ValidationFailed) as event:
		make_trigger(
			kind="event", event_type=" ", filter=".event.payload.amount >", cron_expression="* * * * *"
		)

	assert pointers(template) == ["/input/order"]
	assert pointers(not_json) == ["/input"]
	assert sorted(pointers(event)) == ["/cron_expression", "/event_type", "/filter"]


def test_a_trigger_needs_a_published_workflow_of_its_tenant(
	make_trigger: Callable[..., IssuedTrigger],
	tenant: Tenant,
	owner: User,
	tenant_factory: Callable[..., Tenant],
	publish: Callable[..., Workflow],
) -> None:
	draft = workflow_create(actor=owner, tenant=tenant, name="Draft only")
	other_tenant = tenant_factory(owner=owner)
	foreign = workflow_create(actor=owner, tenant=other_tenant, name="Elsewhere")

	with pytest.raises(ValidationFailed) as unpublished:
		make_trigger(workflow=draft)
	with pytest.raises(ValidationFailed) as no_such_version:
		make_trigger(version=9)
	with pytest.raises(ValidationFailed) as kind:
		make_trigger(kind="email")
	with pytest.raises(NotFound):
		make_trigger(workflow=foreign)

	assert pointers(unpublished) == ["/workflow"]
	assert "published" in unpublished.value.errors[0].message
	assert pointers(no_such_version) == ["/version"]
	assert pointers(kind) == ["/kind"]
	assert make_trigger(version=1).trigger.version == 1


def test_only_members_allowed_to_manage_triggers_may_create_them(
	tenant: Tenant, workflow: Workflow, member_factory: Callable[..., User]
) -> None:
	from workflows.services.triggers import trigger_create

	editor = member_factory(tenant, Role.EDITOR)

	for role in (Role.VIEWER, Role.OPERATOR):
		with pytest.raises(PermissionDenied):
			trigger_create(
				actor=member_factory(tenant, role),
				tenant=tenant,
				workflow=workflow,
				name="x",
				kind="webhook",
			)
	created = trigger_create(actor=editor, tenant=tenant, workflow=workflow, name="by editor", kind="webhook")

	assert created.trigger.created_by == editor


# --- update, enable, disable, delete, rotate ----------------------------------------------------


def test_changing_the_schedule_reschedules_and_is_audited(
	make_trigger: Callable[..., IssuedTrigger], owner: User, tenant: Tenant
) -> None:
	trigger = make_trigger(cron_expression="0 9 * * *", timezone="UTC").trigger

	updated = trigger_update(actor=owner, trigger=trigger, cron_expression="0 9 * * *", timezone="Asia/Tokyo")

	assert updated.next_fire_at is not None
	assert updated.next_fire_at.astimezone(ZoneInfo("Asia/Tokyo")).hour == 9
	assert updated.next_fire_at.astimezone(UTC).hour == 0
	event = AuditEvent.objects.for_tenant(tenant).filter(action="trigger.update").get()
	assert event.changes["timezone"] == {"before": "UTC", "after": "Asia/Tokyo"}


def test_an_update_that_changes_nothing_writes_nothing(
	make_trigger: Callable[..., IssuedTrigger], owner: User, tenant: Tenant
) -> None:
	trigger = make_trigger().trigger

	trigger_update(actor=owner, trigger=trigger, name=trigger.name, input=trigger.input)

	assert audit_actions(tenant, trigger) == ["trigger.create"]


def test_other_fields_change_without_moving_the_schedule(
	make_trigger: Callable[..., IssuedTrigger], owner: User
) -> None:
	trigger = make_trigger(kind="event", filter=".event.payload.amount > 1").trigger
	cron = make_trigger().trigger
	scheduled = cron.next_fire_at

	event = trigger_update(
		actor=owner, trigger=trigger, name="  Big orders ", filter="", event_type="order.big", priority=9
	)
	renamed = trigger_update(actor=owner, trigger=cron, name="Renamed", missed_fire_policy="fire_once")

	assert (event.name, event.filter, event.event_type, event.priority) == ("Big orders", "", "order.big", 9)
	assert renamed.next_fire_at == scheduled
	assert renamed.missed_fire_policy == "fire_once"
	with pytest.raises(ValidationFailed) as caught:
		trigger_update(actor=owner, trigger=trigger, filter="(((", input={"x": "${"})
	assert sorted(pointers(caught)) == ["/filter", "/input/x"]


def test_disabling_stops_the_schedule_and_enabling_restarts_it_from_now(
	make_trigger: Callable[..., IssuedTrigger], owner: User, tenant: Tenant
) -> None:
	trigger = make_trigger().trigger

	disabled = trigger_disable(actor=owner, trigger=trigger)
	again = trigger_disable(actor=owner, trigger=trigger)
	enabled = trigger_enable(actor=owner, trigger=trigger)

	assert (disabled.enabled, disabled.next_fire_at) == (False, None)
	assert again.enabled is False
	assert enabled.enabled is True
	assert enabled.next_fire_at is not None
	assert enabled.next_fire_at > timezone.now()
	assert audit_actions(tenant, trigger) == ["trigger.create", "trigger.disable", "trigger.enable"]


def test_a_webhook_trigger_can_be_disabled_and_enabled(
	make_trigger: Callable[..., IssuedTrigger], owner: User
) -> None:
	trigger = make_trigger(kind="webhook").trigger

	trigger_disable(actor=owner, trigger=trigger)
	enabled = trigger_enable(actor=owner, trigger=trigger)

	assert enabled.enabled
	assert enabled.next_fire_at is None


def test_a_deleted_trigger_is_gone_from_the_tenant(
	make_trigger: Callable[..., IssuedTrigger], owner: User, tenant: Tenant
) -> None:
	trigger = make_trigger().trigger

	trigger_delete(actor=owner, trigger=trigger)

	assert not Trigger.objects.for_tenant(tenant).filter(pk=trigger.pk).exists()
	assert (
		AuditEvent.objects.for_tenant(tenant)
		.filter(action="trigger.delete", object_id=str(trigger.pk))
		.exists()
	)
	with pytest.raises(NotFound):
		trigger_update(actor=owner, trigger=trigger, name="ghost")


def test_rotating_gives_a_new_secret_and_only_webhooks_have_one(
	make_trigger: Callable[..., IssuedTrigger], owner: User, tenant: Tenant
) -> None:
	issued = make_trigger(kind="webhook")

	rotated = trigger_rotate_secret(actor=owner, trigger=issued.trigger)

	assert rotated.secret is not None
	assert rotated.secret != issued.secret
	assert rotated.trigger.token == issued.trigger.token
	audit = AuditEvent.objects.for_tenant(tenant).get(action="trigger.rotate_secret")
	assert rotated.secret not in json.dumps(audit.changes)
	with pytest.raises(Conflict, match="Only webhook"):
		trigger_rotate_secret(actor=owner, trigger=make_trigger().trigger)


def test_viewers_cannot_change_triggers(
	make_trigger: Callable[..., IssuedTrigger], tenant: Tenant, member_factory: Callable[..., User]
) -> None:
	trigger = make_trigger(kind="webhook").trigger
	viewer = member_factory(tenant, Role.VIEWER)

	for change in (trigger_enable, trigger_disable, trigger_delete, trigger_rotate_secret):
		with pytest.raises(PermissionDenied):
			change(actor=viewer, trigger=trigger)
	with pytest.raises(PermissionDenied):
		trigger_update(actor=viewer, trigger=trigger, name="mine")


# --- previews and daylight saving time --------------------------------------------------------


def test_preview_lists_the_next_fire_times_in_the_zone() -> None:
	times = cron_preview(
		expression="0 9 * * 1-5",
		timezone="America/New_York",
		count=3,
		after=datetime(2025, 1, 3, 15, tzinfo=UTC),
	)

	assert [t.isoformat() for t in times] == [
		"2025-01-06T09:00:00-05:00",
		"2025-01-07T09:00:00-05:00",
		"2025-01-08T09:00:00-05:00",
	]


def test_a_daily_time_skipped_by_spring_forward_fires_when_the_clocks_jump() -> None:
	times = cron_preview(
		expression="30 2 * * *",
		timezone="Europe/Paris",
		count=3,
		after=datetime(2025, 3, 29, 3, 0),  # noqa: DTZ001 - naive: read as Paris wall time
	)

	assert [t.isoformat() for t in times] == [
		"2025-03-30T03:00:00+02:00",  # 02:30 does not exist that night
		"2025-03-31T02:30:00+02:00",
		"2025-04-01T02:30:00+02:00",
	]


def test_a_daily_time_repeated_by_fall_back_fires_once() -> None:
	times = cron_preview(
		expression="30 2 * * *",
		timezone="Europe/Paris",
		count=3,
		after=datetime(2025, 10, 25, 3, 0, tzinfo=PARIS),
	)

	assert [t.isoformat() for t in times] == [
		"2025-10-26T02:30:00+02:00",
		"2025-10-27T02:30:00+01:00",
		"2025-10-28T02:30:00+01:00",
	]
	assert times[1].astimezone(UTC) - times[0].astimezone(UTC) == timedelta(hours=25)


def test_an_hourly_schedule_keeps_its_rhythm_through_both_dst_changes() -> None:
	spring = cron_preview(
		expression="30 * * * *",
		timezone="Europe/Paris",
		count=3,
		after=datetime(2025, 3, 30, 1, 0, tzinfo=PARIS),
	)
	fall = cron_preview(
		expression="0 * * * *",
		timezone="Europe/Paris",
		count=4,
		after=datetime(2025, 10, 26, 0, 30, tzinfo=PARIS),
	)

	assert [t.isoformat() for t in spring] == [
		"2025-03-30T01:30:00+01:00",
		"2025-03-30T03:30:00+02:00",
		"2025-03-30T04:30:00+02:00",
	]
	assert [t.isoformat() for t in fall] == [
		"2025-10-26T01:00:00+02:00",
		"2025-10-26T02:00:00+02:00",
		"2025-10-26T02:00:00+01:00",
		"2025-10-26T03:00:00+01:00",
	]
	instants = [t.astimezone(UTC) for t in fall]
	assert {b - a for a, b in zip(instants, instants[1:], strict=False)} == {timedelta(hours=1)}


def test_preview_refuses_bad_input_with_pointers_and_hints() -> None:
	with pytest.raises(ValidationFailed) as both:
		cron_preview(expression="0 24 * * *", timezone="Europe/Atlantis")
	with pytest.raises(ValidationFailed) as count:
		cron_preview(expression="* * * * *", timezone="UTC", count=0)
	with pytest.raises(ValidationFailed) as zone_type:
		cron_preview(expression="* * * * *", timezone="/etc/passwd")

	assert pointers(both) == ["/expression", "/timezone"]
	assert "IANA" in both.value.errors[1].hint
	assert pointers(count) == ["/count"]
	assert pointers(zone_type) == ["/timezone"]


def test_preview_defaults_to_the_next_ten_from_now() -> None:
	times = cron_preview(expression="* * * * *", timezone="UTC")

	assert len(times) == 10
	assert times[0] > timezone.now()
	assert times[0] - timezone.now() <= timedelta(minutes=1)
