"""Managing triggers: create, change, enable, disable, delete, and rotate a webhook's secret.

Each checks ``trigger.manage``, validates every field at once, and is audited (the webhook
secret is redacted from the audit trail).
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any, Final

from django.db import transaction
from django.utils.timezone import now as utc_now

from workflows.engine.runtime import engine_for
from workflows.errors import Conflict, FieldError, NotFound, ValidationFailed
from workflows.expressions import ExpressionError, compile_expression, compile_template
from workflows.models import MissedFirePolicy, Tenant, Trigger, TriggerKind, User, Workflow, WorkflowVersion
from workflows.models.audit import snapshot
from workflows.permissions import require
from workflows.roles import Perm
from workflows.services.audit import audit_record
from workflows.services.runs import validate_against_schema
from workflows.services.triggers.schedule import CronSchedule, cron_schedule

__all__ = [
	"UNSET",
	"IssuedTrigger",
	"trigger_create",
	"trigger_delete",
	"trigger_disable",
	"trigger_enable",
	"trigger_rotate_secret",
	"trigger_update",
]


class _Unset(enum.Enum):
	UNSET = "UNSET"


UNSET: Final = _Unset.UNSET
"""Marks a :func:`trigger_update` argument that was not given (None is a value there)."""


# --- validation ----------------------------------------------------------------------------------


def _clean_name(name: Any, errors: list[FieldError]) -> str:
	cleaned = name.strip() if isinstance(name, str) else ""
	if not cleaned or len(cleaned) > 200:
		errors.append(
			FieldError("/name", "A name of 1 to 200 characters is required.", "e.g. 'Nightly import'")
		)
	return cleaned


def _pinned(workflow: Workflow, version: Any, errors: list[FieldError]) -> WorkflowVersion | None:
	versions = WorkflowVersion.objects.for_tenant(workflow.tenant).filter(workflow=workflow)
	if version is None:
		latest = versions.order_by("-number").first()
		if latest is None:
			errors.append(
				FieldError(
					"/workflow",
					"The workflow has no published version.",
					"Publish it first: triggers start published versions.",
				)
			)
		return latest
	found = (
		versions.filter(number=version).first()
		if isinstance(version, int) and not isinstance(version, bool)
		else None
	)
	if found is None:
		errors.append(
			FieldError(
				"/version",
				f"Version {version!r} is not a published version.",
				"Leave it empty for the latest.",
			)
		)
	return found


def _check_input(kind: str, value: Any, pinned: WorkflowVersion | None, errors: list[FieldError]) -> None:
	if value is None:
		return
	if kind != TriggerKind.CRON:
		try:
			compile_template(value)
		except ExpressionError as exc:
			errors.append(
				FieldError(
					f"/input{exc.pointer or ''}",
					str(exc),
					"Templates read .payload, .headers (webhook), .event.",
				)
			)
		except TypeError as exc:
			errors.append(FieldError("/input", str(exc), "The input must be JSON."))
		return
	try:
		json.dumps(value, allow_nan=False)
	except (TypeError, ValueError) as exc:
		errors.append(FieldError("/input", f"The input must be JSON: {exc}.", 'e.g. {"report": "daily"}'))
		return
	if pinned is not None:
		try:
			validate_against_schema(value, engine_for(pinned).definition.input_schema, pointer="/input")
		except ValidationFailed as exc:
			errors.extend(exc.errors)


def _validated(
	*, workflow: Workflow, kind: str, values: dict[str, Any]
) -> tuple[dict[str, Any], CronSchedule | None]:
	"""Check every field at once; the cleaned values and, for cron, the schedule."""
	errors: list[FieldError] = []
	cleaned = dict(values, name=_clean_name(values["name"], errors))
	priority = values["priority"]
	if priority is not None and (
		isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 9
	):
		errors.append(
			FieldError("/priority", "Priority must be a whole number from 0 to 9.", "9 runs first.")
		)
	pinned = _pinned(workflow, values["version"], errors)
	schedule: CronSchedule | None = None
	not_for_kind = {
		TriggerKind.CRON: ("event_type", "filter"),
		TriggerKind.WEBHOOK: ("cron_expression", "event_type", "filter"),
		TriggerKind.EVENT: ("cron_expression",),
	}[TriggerKind(kind)]
	errors.extend(
		FieldError(f"/{field}", f"A {kind} trigger has no {field}.", "Leave it empty.")
		for field in not_for_kind
		if values[field]
	)
	if kind == TriggerKind.CRON:
		try:
			schedule = cron_schedule(
				values["cron_expression"],
				values["timezone"],
				expression_pointer="/cron_expression",
				zone_pointer="/timezone",
			)
			cleaned["cron_expression"] = values["cron_expression"].strip()
		except ValidationFailed as exc:
			errors.extend(exc.errors)
		if values["missed_fire_policy"] not in MissedFirePolicy.values:
			errors.append(
				FieldError(
					"/missed_fire_policy",
					f"Unknown policy {values['missed_fire_policy']!r}.",
					"Use skip, fire_once or fire_all.",
				)
			)
	if kind == TriggerKind.EVENT:
		event_type = values["event_type"].strip() if isinstance(values["event_type"], str) else ""
		cleaned["event_type"] = event_type
		if not event_type or len(event_type) > 200:
			errors.append(
				FieldError(
					"/event_type", "An event type of 1 to 200 characters is required.", "e.g. 'order.paid'"
				)
			)
		source = values["filter"] if isinstance(values["filter"], str) else ""
		cleaned["filter"] = source.strip()
		if source.strip():
			try:
				compile_expression(source)
			except ExpressionError as exc:
				errors.append(FieldError("/filter", str(exc), "e.g. .event.payload.amount > 100"))
	_check_input(kind, values["input"], pinned, errors)
	if errors:
		raise ValidationFailed(errors, f"The trigger is invalid ({len(errors)} problem(s)).")
	return cleaned, schedule


# --- managing triggers -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IssuedTrigger:
	"""A trigger as created or re-keyed: ``secret`` is the webhook signing secret, shown this once."""

	trigger: Trigger
	secret: str | None


def _locked(trigger: Trigger) -> Trigger:
	locked = Trigger.objects.for_tenant(trigger.tenant).select_for_update().filter(pk=trigger.pk).first()
	if locked is None:
		raise NotFound()
	return locked


def _write(*, actor: User, trigger: Trigger, action: str, before: dict[str, Any], **extra: Any) -> Trigger:
	trigger.updated_by = actor
	trigger.save()
	audit_record(
		actor=actor,
		tenant=trigger.tenant,
		action=action,
		obj=trigger,
		before=before,
		after=snapshot(trigger),
		extra=extra or None,
	)
	return trigger


@transaction.atomic
def trigger_create(
	*,
	actor: User,
	tenant: Tenant,
	workflow: Workflow,
	name: str,
	kind: str,
	enabled: bool = True,
	input: Any = None,
	priority: int | None = None,
	version: int | None = None,
	cron_expression: str = "",
	timezone: str = "UTC",
	missed_fire_policy: str = MissedFirePolicy.SKIP,
	event_type: str = "",
	filter: str = "",
) -> IssuedTrigger:
	"""Create a trigger that starts runs of ``workflow`` (which must have a published version).

	A webhook trigger gets its URL token and signing secret here; the secret is in the
	result and is not shown again (rotate it to get a new one).
	"""
	require(actor=actor, tenant=tenant, perm=Perm.TRIGGER_MANAGE, obj=workflow)
	if workflow.tenant_id != tenant.pk or workflow.deleted_at is not None:
		raise NotFound()
	if kind not in TriggerKind.values:
		raise ValidationFailed.single(
			"/kind", f"Unknown trigger kind {kind!r}.", "Use cron, webhook or event."
		)
	values = {
		"name": name,
		"input": input,
		"priority": priority,
		"version": version,
		"cron_expression": cron_expression,
		"timezone": timezone,
		"missed_fire_policy": missed_fire_policy,
		"event_type": event_type,
		"filter": filter,
	}
	cleaned, schedule = _validated(workflow=workflow, kind=kind, values=values)
	trigger = Trigger(
		tenant=tenant,
		workflow=workflow,
		kind=kind,
		enabled=bool(enabled),
		created_by=actor,
		updated_by=actor,
		**cleaned,
	)
	issued: str | None = None
	if kind == TriggerKind.WEBHOOK:
		trigger.token, issued = Trigger.new_token(tenant), Trigger.new_secret()
		trigger.set_signing_secret(issued)
	if schedule is not None and trigger.enabled:
		trigger.next_fire_at = next(schedule.occurrences(utc_now()))
	trigger.save()
	audit_record(actor=actor, tenant=tenant, action="trigger.create", obj=trigger, after=snapshot(trigger))
	return IssuedTrigger(trigger=trigger, secret=issued)


@transaction.atomic
def trigger_update(
	*,
	actor: User,
	trigger: Trigger,
	name: str | _Unset = UNSET,
	input: Any = UNSET,
	priority: int | None | _Unset = UNSET,
	version: int | None | _Unset = UNSET,
	cron_expression: str | _Unset = UNSET,
	timezone: str | _Unset = UNSET,
	missed_fire_policy: str | _Unset = UNSET,
	event_type: str | _Unset = UNSET,
	filter: str | _Unset = UNSET,
) -> Trigger:
	"""Change a trigger's fields (its kind and workflow stay). A new schedule counts from now."""
	require(actor=actor, tenant=trigger.tenant, perm=Perm.TRIGGER_MANAGE, obj=trigger.workflow)
	trigger = _locked(trigger)
	changes = {
		"name": name,
		"input": input,
		"priority": priority,
		"version": version,
		"cron_expression": cron_expression,
		"timezone": timezone,
		"missed_fire_policy": missed_fire_policy,
		"event_type": event_type,
		"filter": filter,
	}
	values = {key: getattr(trigger, key) if value is UNSET else value for key, value in changes.items()}
	cleaned, schedule = _validated(workflow=trigger.workflow, kind=trigger.kind, values=values)
	before = snapshot(trigger)
	rescheduled = schedule is not None and (
		cleaned["cron_expression"] != trigger.cron_expression or cleaned["timezone"] != trigger.timezone
	)
	for key, value in cleaned.items():
		setattr(trigger, key, value)
	if rescheduled and schedule is not None and trigger.enabled:
		trigger.next_fire_at = next(schedule.occurrences(utc_now()))
	if snapshot(trigger) == before:
		return trigger
	return _write(actor=actor, trigger=trigger, action="trigger.update", before=before)


def _set_enabled(*, actor: User, trigger: Trigger, enabled: bool) -> Trigger:
	require(actor=actor, tenant=trigger.tenant, perm=Perm.TRIGGER_MANAGE, obj=trigger.workflow)
	trigger = _locked(trigger)
	if trigger.enabled == enabled:
		return trigger
	before = snapshot(trigger)
	trigger.enabled = enabled
	# Occurrences that passed while disabled are not owed: the schedule restarts from now.
	trigger.next_fire_at = None
	if enabled and trigger.kind == TriggerKind.CRON:
		schedule = cron_schedule(
			trigger.cron_expression,
			trigger.timezone,
			expression_pointer="/cron_expression",
			zone_pointer="/timezone",
		)
		trigger.next_fire_at = next(schedule.occurrences(utc_now()))
	return _write(
		actor=actor, trigger=trigger, action="trigger.enable" if enabled else "trigger.disable", before=before
	)


@transaction.atomic
def trigger_enable(*, actor: User, trigger: Trigger) -> Trigger:
	"""Let the trigger fire again; a cron trigger's next occurrence counts from now."""
	return _set_enabled(actor=actor, trigger=trigger, enabled=True)


@transaction.atomic
def trigger_disable(*, actor: User, trigger: Trigger) -> Trigger:
	"""Stop the trigger firing (its webhook URL answers 404) until it is enabled again."""
	return _set_enabled(actor=actor, trigger=trigger, enabled=False)


@transaction.atomic
def trigger_delete(*, actor: User, trigger: Trigger) -> None:
	"""Soft-delete: the trigger stops firing; tenant admins can restore it."""
	require(actor=actor, tenant=trigger.tenant, perm=Perm.TRIGGER_MANAGE, obj=trigger.workflow)
	trigger = _locked(trigger)
	before = snapshot(trigger)
	trigger.deleted_at = utc_now()
	_write(actor=actor, trigger=trigger, action="trigger.delete", before=before)


@transaction.atomic
def trigger_rotate_secret(*, actor: User, trigger: Trigger) -> IssuedTrigger:
	"""Give a webhook trigger a new signing secret; the old one stops working at once."""
	require(actor=actor, tenant=trigger.tenant, perm=Perm.TRIGGER_MANAGE, obj=trigger.workflow)
	trigger = _locked(trigger)
	if trigger.kind != TriggerKind.WEBHOOK:
		raise Conflict(f"Only webhook triggers have a signing secret; this one is a {trigger.kind} trigger.")
	before = snapshot(trigger)
	issued = Trigger.new_secret()
	trigger.set_signing_secret(issued)
	_write(actor=actor, trigger=trigger, action="trigger.rotate_secret", before=before, rotated="secret")
	return IssuedTrigger(trigger=trigger, secret=issued)
