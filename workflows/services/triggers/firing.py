"""Firing triggers: the cron sweep's per-trigger step, signed webhooks, and event triggers.

Runs started here have no actor; they carry ``trigger_kind`` and ``trigger_ref``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from uuid import UUID

from django.db import transaction
from django.db.models import QuerySet
from django.utils.timezone import now as utc_now

from workflows.errors import ServiceError, ValidationFailed
from workflows.expressions import ExpressionError, compile_expression, compile_template
from workflows.models import Event, Run, Tenant, Trigger, TriggerKind
from workflows.services.runs import run_start
from workflows.services.triggers.schedule import CronPlan, cron_plan, cron_schedule

__all__ = [
	"MAX_WEBHOOK_BODY",
	"SIGNATURE_HEADER",
	"SIGNATURE_TOLERANCE",
	"TIMESTAMP_HEADER",
	"cron_trigger_fire",
	"event_triggers_schedule",
	"event_triggers_start",
	"webhook_signature",
	"webhook_signature_valid",
	"webhook_trigger_find",
	"webhook_trigger_fire",
]

logger = logging.getLogger("apg.triggers")

SIGNATURE_HEADER: Final = "X-APG-Signature"
TIMESTAMP_HEADER: Final = "X-APG-Timestamp"
SIGNATURE_TOLERANCE: Final = timedelta(minutes=5)
MAX_WEBHOOK_BODY: Final = 1 << 20
_TIMESTAMP = re.compile(r"[0-9]{1,10}")
_HIDDEN_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


# --- logging ---------------------------------------------------------------------------------


def _extra(trigger: Trigger, **more: Any) -> dict[str, Any]:
	return {
		"tenant_id": str(trigger.tenant_id),
		"trigger_id": str(trigger.pk),
		"trigger_kind": trigger.kind,
	} | more


def _log_fire_failed(trigger: Trigger, exc: Exception) -> None:
	logger.warning(
		"trigger %s could not start a run: %s",
		trigger.pk,
		exc,
		exc_info=not isinstance(exc, ServiceError),
		extra=_extra(trigger, error=str(exc)),
	)


def _log_cron_missed(trigger: Trigger, plan: CronPlan) -> None:
	logger.warning(
		"cron trigger %s missed %s%s occurrence(s) (policy %s)",
		trigger.pk,
		"at least " if plan.more else "",
		plan.missed,
		trigger.missed_fire_policy,
		extra=_extra(trigger, missed=plan.missed, policy=trigger.missed_fire_policy),
	)


def _log_cron_broken(trigger: Trigger, exc: Exception) -> None:
	logger.error(
		"cron trigger %s has an unusable schedule and is stopped: %s",
		trigger.pk,
		exc,
		extra=_extra(trigger, expression=trigger.cron_expression, zone=trigger.timezone),
	)


def _log_filter_failed(trigger: Trigger, event: Event, exc: ExpressionError) -> None:
	logger.warning(
		"event trigger %s: filter failed on event %s, counted as no match: %s",
		trigger.pk,
		event.pk,
		exc,
		extra=_extra(trigger, event_id=str(event.pk), error=str(exc)),
	)


# --- firing ------------------------------------------------------------------------------------------


def _render(trigger: Trigger, context: dict[str, Any]) -> Any:
	if trigger.input is None:
		return context["payload"]
	try:
		return compile_template(trigger.input).evaluate(context)
	except ExpressionError as exc:
		raise ValidationFailed.single(
			f"/input{exc.pointer or ''}",
			f"The trigger's input template failed on this payload: {exc}",
			"Send the fields the template reads, or change the trigger's input template.",
		) from None


def _start(trigger: Trigger, run_input: Any, *, ref: str) -> Run:
	with transaction.atomic():
		run = run_start(
			actor=None,
			workflow=trigger.workflow,
			input=run_input,
			version=trigger.version,
			priority=trigger.priority,
			trigger_kind=trigger.kind,
			trigger_ref=ref,
		)
		# Bookkeeping, not a user's change: no audit event.
		Trigger.objects.for_tenant(trigger.tenant).filter(pk=trigger.pk).update(last_fired_at=utc_now())
	return run


def cron_trigger_fire(*, trigger: Trigger, now: datetime) -> list[Run]:
	"""Fire what a due cron trigger owes at ``now`` and move ``next_fire_at`` past it.

	The caller holds the trigger's row lock in the current transaction, so the runs and the
	new ``next_fire_at`` commit together: an occurrence is fired once or not at all.
	"""
	assert transaction.get_connection().in_atomic_block, "lock the trigger in the sweep's transaction"
	rows = Trigger.objects.for_tenant(trigger.tenant).filter(pk=trigger.pk)
	try:
		schedule = cron_schedule(
			trigger.cron_expression,
			trigger.timezone,
			expression_pointer="/cron_expression",
			zone_pointer="/timezone",
		)
	except ValidationFailed as exc:
		_log_cron_broken(trigger, exc)
		rows.update(next_fire_at=None)
		return []
	plan = cron_plan(
		schedule=schedule, due_at=trigger.next_fire_at or now, now=now, policy=trigger.missed_fire_policy
	)
	runs: list[Run] = []
	for _occurrence in plan.fires:
		try:
			runs.append(_start(trigger, trigger.input, ref=str(trigger.pk)))
		except Exception as exc:  # noqa: BLE001 - one broken trigger must not stall every other one's sweep
			_log_fire_failed(trigger, exc)
	if plan.missed:
		_log_cron_missed(trigger, plan)
	rows.update(next_fire_at=plan.next_fire_at)
	return runs


def webhook_trigger_find(*, token: str) -> Trigger | None:
	"""The enabled webhook trigger at ``/hooks/<token>``, or None for anything else.

	Unknown, disabled and deleted triggers, and those of inactive tenants or deleted
	workflows, all read as None, so the endpoint answers them alike.
	"""
	tenant_hex, _, random_part = token.partition("-")
	if len(token) > 100 or len(tenant_hex) != 32 or not random_part:
		return None
	try:
		tenant_id = UUID(hex=tenant_hex)
	except ValueError:
		return None
	tenant = Tenant.objects.filter(pk=tenant_id, is_active=True).first()
	if tenant is None:
		return None
	return (
		Trigger.objects.for_tenant(tenant)
		.select_related("tenant", "workflow")
		.filter(token=token, kind=TriggerKind.WEBHOOK, enabled=True, workflow__deleted_at__isnull=True)
		.first()
	)


def webhook_signature(*, secret: str, timestamp: str, body: bytes) -> str:
	"""The ``X-APG-Signature`` value: ``sha256=`` and hex HMAC-SHA256(secret, timestamp + "." + body)."""
	digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
	return f"sha256={digest}"


def webhook_signature_valid(
	*, secret: str, timestamp: str | None, signature: str | None, body: bytes, now: datetime | None = None
) -> bool:
	"""Whether the signature matches and the timestamp (Unix seconds) is within 5 minutes of now.

	The comparison takes constant time; callers answer every False the same way.
	"""
	if not secret or not timestamp or not signature or not _TIMESTAMP.fullmatch(timestamp):
		return False
	sent = datetime.fromtimestamp(int(timestamp), tz=UTC)
	if abs((now or utc_now()) - sent) > SIGNATURE_TOLERANCE:
		return False
	expected = webhook_signature(secret=secret, timestamp=timestamp, body=body)
	return hmac.compare_digest(expected.encode(), signature.strip().lower().encode())


def webhook_trigger_fire(*, trigger: Trigger, payload: Any, headers: dict[str, str]) -> Run:
	"""Start a run from a verified webhook request (the caller checked the signature).

	The input template sees ``.payload`` and ``.headers`` (lower-case names; credentials
	and cookies left out).

	Raises:
		ValidationFailed: The template failed, or the input breaks the workflow's schema.
		Conflict: The workflow cannot start runs now (archived).
	"""
	visible = {name.lower(): value for name, value in headers.items() if name.lower() not in _HIDDEN_HEADERS}
	run_input = _render(trigger, {"payload": payload, "headers": visible})
	return _start(trigger, run_input, ref=str(trigger.pk))


def _event_triggers(tenant: Tenant, event_type: str) -> QuerySet[Trigger]:
	return Trigger.objects.for_tenant(tenant).filter(
		kind=TriggerKind.EVENT, enabled=True, event_type=event_type, workflow__deleted_at__isnull=True
	)


def event_triggers_schedule(*, event: Event, known: dict[str, int] | None = None) -> int:
	"""Hand a just-published event to its type's event triggers after commit; how many there are.

	Filters are evaluated and runs started by the ``apg.start_event_triggers`` task, so the
	count is of triggers that will consider the event, not of runs already started.
	``known``: counts by event type already read in this transaction (a batch of events
	reads each type's once); filled in here.
	"""
	listening = None if known is None else known.get(event.type)
	if listening is None:
		listening = _event_triggers(event.tenant, event.type).count()
		if known is not None:
			known[event.type] = listening
	if listening:
		from workflows.tasks import start_event_triggers_task

		event_id = str(event.pk)
		transaction.on_commit(lambda: start_event_triggers_task.delay(event_id))
	return listening


def _correlation(event: Event) -> Any:
	if not event.correlation:
		return None
	try:
		return json.loads(event.correlation)
	except ValueError:  # canonical() cuts long correlations at 500 characters
		return event.correlation


def _matches(trigger: Trigger, event: Event, context: dict[str, Any]) -> bool:
	if not trigger.filter:
		return True
	try:
		return compile_expression(trigger.filter).evaluate(context) is True
	except ExpressionError as exc:
		_log_filter_failed(trigger, event, exc)
		return False


def event_triggers_start(*, event: Event) -> list[Run]:
	"""Start one run for each enabled event trigger of the event's type whose filter is true.

	Filters and input templates see ``.event`` (id, type, correlation, payload, source,
	published_at) and ``.payload``. A filter that fails counts as no match; a run that cannot
	start is logged and skipped. Runs carry ``trigger_ref = "<trigger id>:<event id>"``, so a
	redelivered task starts nothing twice.
	"""
	tenant = event.tenant
	body = {
		"id": str(event.pk),
		"type": event.type,
		"correlation": _correlation(event),
		"payload": event.payload,
		"source": event.source,
		"published_at": event.created_at.isoformat(),
	}
	context = {"event": body, "payload": event.payload}
	started: list[Run] = []
	with transaction.atomic():
		# Deliveries of one event queue here, and the second sees the runs of the first.
		if (
			Event.objects.for_tenant(tenant).select_for_update().filter(pk=event.pk).values_list("pk").first()
			is None
		):
			return []
		done = set(
			Run.objects.for_tenant(tenant)
			.filter(
				trigger_kind=TriggerKind.EVENT,
				created_at__gte=event.created_at,
				trigger_ref__endswith=f":{event.pk}",
			)
			.values_list("trigger_ref", flat=True)
		)
		for trigger in (
			_event_triggers(tenant, event.type).select_related("tenant", "workflow").order_by("created_at")
		):
			ref = f"{trigger.pk}:{event.pk}"
			if ref in done or not _matches(trigger, event, context):
				continue
			try:
				started.append(_start(trigger, _render(trigger, context), ref=ref))
			except ServiceError as exc:
				_log_fire_failed(trigger, exc)
	return started
