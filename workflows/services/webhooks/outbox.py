"""The engine's outbox: a delivery row per run event and matching subscription, sent after commit.

:func:`record_deliveries` is called by the engine (:mod:`workflows.engine.runtime`) in the
transaction that writes a transition's run events; :func:`dispatch_deliveries` hands the
new rows to the workers after commit (:mod:`workflows.webhook_tasks` does the HTTP), and
the sweeper sends any whose message was lost. A transition of a tenant with no
subscriptions must cost next to nothing: each process keeps every tenant's active
subscriptions for ``WEBHOOK_SUBSCRIPTION_CACHE_SECONDS``, then re-reads them only if a
version counter in Django's cache says they changed (:func:`forget_subscriptions` bumps it).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from workflows.models import Run, RunEvent, WebhookDelivery, WebhookSubscription, WorkflowVersion
from workflows.models.webhooks import WEBHOOK_EVENT_TYPES, event_type_matches

if TYPE_CHECKING:
	from workflows.engine.sql import Writes

__all__ = ["MAX_VALUE_BYTES", "dispatch_deliveries", "forget_subscriptions", "record_deliveries"]

_EXPOSED: Final = frozenset(WEBHOOK_EVENT_TYPES)
# A value over this many bytes of JSON is left out of a payload (receivers read it from the API).
MAX_VALUE_BYTES: Final = 64 * 1024


@dataclass(slots=True)
class _Listening:
	"""A tenant's active subscriptions as one process last read them."""

	version: Any
	fresh_until: float
	reload_at: float
	subscriptions: tuple[tuple[uuid.UUID, tuple[str, ...]], ...]
	by_type: dict[str, tuple[uuid.UUID, ...]] = field(default_factory=dict)

	def subscribers(self, event_type: str) -> tuple[uuid.UUID, ...]:
		"""The ids of the subscriptions that want ``event_type`` (worked out once per type)."""
		found = self.by_type.get(event_type)
		if found is None:
			found = (
				tuple(
					pk
					for pk, patterns in self.subscriptions
					if any(event_type_matches(p, event_type) for p in patterns)
				)
				if event_type in _EXPOSED
				else ()
			)
			self.by_type[event_type] = found
		return found


_listening: dict[Any, _Listening] = {}
_MAX_TENANTS_CACHED: Final = 10_000
# Read from the database at least this often whatever the version says, so a change made
# without the services (a restore, a shell, an evicted version key) is seen within a minute.
_RELOAD_SECONDS: Final = 60.0


def _version_key(tenant_id: object) -> str:
	return f"webhooks:subscriptions:{tenant_id}"


class _Outbox:
	"""Logging of the outbox's cache (it must never break a transition)."""

	logger = logging.getLogger("apg.webhooks")

	def _log_cache_unavailable(self, tenant_id: object, exc: Exception) -> None:
		self.logger.warning(
			"webhook subscription versions unavailable (%s); reading subscriptions from the database",
			exc,
			extra={"tenant_id": str(tenant_id)},
		)

	def _log_dispatch_failed(self, count: int, exc: Exception) -> None:
		self.logger.warning(
			"could not send %s webhook delivery task(s); the sweeper will: %s",
			count,
			exc,
			extra={"deliveries": count},
		)


_outbox = _Outbox()


def _current_version(tenant_id: object) -> Any:
	key = _version_key(tenant_id)
	try:
		version = cache.get(key)
		if version is None:
			cache.add(key, uuid.uuid4().hex, timeout=None)
			version = cache.get(key)
	except Exception as exc:  # noqa: BLE001 - a cache outage must not stop the engine
		_outbox._log_cache_unavailable(tenant_id, exc)
		return None
	return version


def _listening_for(run: Run) -> _Listening:
	tenant_id = run.tenant_id
	now = time.monotonic()
	entry = _listening.get(tenant_id)
	if entry is not None and now < entry.fresh_until:
		return entry
	ttl = settings.WEBHOOK_SUBSCRIPTION_CACHE_SECONDS
	# The version is read before the rows: a change committed in between bumps it again after,
	# so the next check reloads; reading it after could pair old rows with a new version.
	version = _current_version(tenant_id)
	if entry is not None and version is not None and version == entry.version and now < entry.reload_at:
		entry.fresh_until = now + ttl
		return entry
	rows = (
		WebhookSubscription.objects.for_tenant(run.tenant)
		.filter(active=True)
		.order_by("created_at")
		.values_list("pk", "event_types")
	)
	entry = _Listening(
		version=version,
		fresh_until=now + ttl,
		reload_at=now + _RELOAD_SECONDS,
		subscriptions=tuple((pk, tuple(types)) for pk, types in rows),
	)
	if len(_listening) >= _MAX_TENANTS_CACHED:
		_listening.clear()
	_listening[tenant_id] = entry
	return entry


def forget_subscriptions(tenant_id: object) -> None:
	"""Make every process re-read the tenant's subscriptions (after this transaction commits).

	This process forgets them at once and again after commit; the others on their next
	check of the version counter, within ``WEBHOOK_SUBSCRIPTION_CACHE_SECONDS``.
	"""
	_listening.pop(tenant_id, None)

	def bump() -> None:
		_listening.pop(tenant_id, None)
		try:
			cache.set(_version_key(tenant_id), uuid.uuid4().hex, timeout=None)
		except Exception as exc:  # noqa: BLE001 - other processes then notice within the TTL
			_outbox._log_cache_unavailable(tenant_id, exc)

	transaction.on_commit(bump)


def _bounded(value: Any) -> Any:
	"""``value``, or a marker when its JSON is too big to send (receivers read it from the API)."""
	if value is None or isinstance(value, bool | int | float):
		return value
	size = len(json.dumps(value, separators=(",", ":"), default=str))
	return value if size <= MAX_VALUE_BYTES else {"omitted": True, "bytes": size}


def _payload(run: Run, event: RunEvent, workflow: tuple[int, str]) -> dict[str, Any]:
	number, slug = workflow
	source = event.data if isinstance(event.data, dict) else {}
	data: dict[str, Any] = {
		"run_id": str(run.pk),
		"workflow_id": str(run.workflow_id),
		"workflow_slug": slug,
		"version": number,
		"status": run.status,
		"seq": event.seq,
	}
	if event.type.startswith("approval."):
		data["approval"] = {k: _bounded(v) for k, v in source.items()}
	elif event.type in (
		"run.succeeded",
		"run.failed",
		"run.cancelled",
		"run.compensated",
		"run.compensation_failed",
	):
		data["output"] = _bounded(source.get("output"))
		data["error"] = _bounded(source.get("error"))
	return {
		"id": str(event.pk),
		"type": event.type,
		"occurred_at": event.created_at.isoformat(),
		"tenant": {"id": str(run.tenant_id), "slug": run.tenant.slug},
		"data": data,
	}


def record_deliveries(*, run: Run, events: Sequence[RunEvent], writes: Writes | None = None) -> list[str]:
	"""Insert a pending delivery per event and matching subscription, in the caller's transaction.

	With ``writes`` (the engine's transition) the rows are added to those writes instead of
	inserted at once.

	Called by the engine right after it inserts a transition's run events. With no
	subscription in the tenant it reads nothing (after the first call in a few seconds) and
	returns an empty list. Returns the new deliveries' ids for :func:`dispatch_deliveries`.
	"""
	if not events:
		return []
	listening = _listening_for(run)
	if not listening.subscriptions:
		return []
	rows: list[WebhookDelivery] = []
	workflow: tuple[int, str] | None = None
	now = timezone.now()
	for event in events:
		subscribers = listening.subscribers(event.type)
		if not subscribers:
			continue
		if workflow is None:
			found = (
				WorkflowVersion.objects.for_tenant(run.tenant)
				.filter(pk=run.version_id)
				.values_list("number", "workflow__slug")
				.first()
			)
			workflow = (found[0], found[1]) if found else (0, "")
		payload = _payload(run, event, workflow)
		rows.extend(
			WebhookDelivery(
				tenant_id=run.tenant_id,
				subscription_id=pk,
				event_id=event.pk,
				event_type=event.type,
				run_id=run.pk,
				payload=payload,
				next_attempt_at=now,
				dispatched_at=now,
			)
			for pk in subscribers
		)
	if not rows:
		return []
	if writes is not None:
		writes.insert(WebhookDelivery, rows)
	else:
		WebhookDelivery.objects.for_tenant(run.tenant).bulk_create(rows)
	return [str(row.pk) for row in rows]


def dispatch_deliveries(delivery_ids: list[str]) -> None:
	"""Send a delivery task per id (after commit). A failure to send is left to the sweeper."""
	if not delivery_ids:
		return
	from workflows.webhook_tasks import deliver_webhook_task

	try:
		for delivery_id in delivery_ids:
			deliver_webhook_task.apply_async(args=(delivery_id,), queue="steps")
	except Exception as exc:  # noqa: BLE001 - the rows are committed; the sweeper sends them later
		_outbox._log_dispatch_failed(len(delivery_ids), exc)
