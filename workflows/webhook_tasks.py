"""Sending outgoing webhooks: one signed POST per attempt, retries, the sweeper, auto-disable.

A delivery is claimed before it is sent (its attempt counter goes up and ``next_attempt_at``
moves past the attempt's timeout, in one ``UPDATE``), so a duplicate task message or the
sweeper finds nothing to do, and a worker that dies mid-attempt leaves a delivery that
comes due again. Its outcome is written only by the claim that made the attempt.

Requests go through the connectors' network policy (:mod:`connectors.transport`): private
and internal addresses are refused unless ``CONNECTOR_ALLOW_PRIVATE_NETWORKS`` is set, and
redirects are not followed.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import httpx
from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from connectors.errors import ActionError, PermanentError
from connectors.network import NetworkPolicy
from connectors.transport import USER_AGENT, PolicyTransport
from workflows.crypto import DecryptionError, decrypt
from workflows.models import WebhookDelivery, WebhookSubscription
from workflows.models.audit import snapshot
from workflows.models.webhooks import PING_EVENT_TYPE
from workflows.services.audit import audit_record
from workflows.services.webhooks import dispatch_deliveries, forget_subscriptions

__all__ = [
	"RESPONSE_EXCERPT_CHARS",
	"Attempt",
	"WebhookSender",
	"deliver_webhook_task",
	"retry_delay",
	"sign",
	"sweep_webhook_deliveries_task",
]

RESPONSE_EXCERPT_CHARS: Final = 2000
_READ_LIMIT: Final = 8 * 1024
# Retries due this soon get a countdown task; later ones are sent by the sweeper when due.
_FAST_RETRY_SECONDS: Final = 60.0
_OPEN: Final = (WebhookDelivery.Status.PENDING, WebhookDelivery.Status.FAILED)


def sign(*, secret: str, timestamp: str, body: bytes) -> str:
	"""The ``Webhook-Signature`` value: ``v1=`` and hex HMAC-SHA256(secret, ``timestamp.body``)."""
	digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
	return f"v1={digest}"


def retry_delay(attempt: int) -> float:
	"""Seconds before the attempt after ``attempt``: capped exponential backoff, equal jitter."""
	ceiling = min(
		settings.WEBHOOK_RETRY_MAX_SECONDS, settings.WEBHOOK_RETRY_BASE_SECONDS * 2 ** max(0, attempt - 1)
	)
	# Jitter spreads the retries of many deliveries that failed together (an outage).
	return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - not cryptographic


@dataclass(frozen=True, slots=True)
class Attempt:
	"""What one POST did: the response status (None when there was no response) or the error."""

	status: int | None
	excerpt: str = ""
	error: str = ""
	permanent: bool = False
	duration_ms: int = 0

	@property
	def succeeded(self) -> bool:
		"""A 2xx response."""
		return self.status is not None and 200 <= self.status < 300


async def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, str]:
	# The transport is used without httpx.AsyncClient, which logs every URL (and a token in
	# its query string) at INFO level; redirects are not followed.
	transport = PolicyTransport(NetworkPolicy(allow_private=settings.CONNECTOR_ALLOW_PRIVATE_NETWORKS))
	request = httpx.Request(
		"POST", url, headers=headers, content=body, extensions={"timeout": httpx.Timeout(timeout).as_dict()}
	)
	try:
		async with asyncio.timeout(timeout):
			response = await transport.handle_async_request(request)
			try:
				received = b""
				async for part in response.aiter_raw():
					received += part
					if len(received) >= _READ_LIMIT:
						break
			finally:
				await response.aclose()
	finally:
		await transport.aclose()
	return response.status_code, received[:_READ_LIMIT].decode("utf-8", errors="replace")


def _send(url: str, body: bytes, headers: dict[str, str]) -> Attempt:
	timeout = settings.WEBHOOK_TIMEOUT_SECONDS
	started = time.perf_counter()

	def took() -> int:
		return int((time.perf_counter() - started) * 1000)

	try:
		# The attempt's event loop runs on a thread of its own, so it works the same when the
		# calling thread already runs a loop (an eager task sent from async code).
		with ThreadPoolExecutor(max_workers=1, thread_name_prefix="webhook") as pool:
			status, text = pool.submit(asyncio.run, _post(url, body, headers, timeout)).result()
	except (TimeoutError, httpx.TimeoutException):
		return Attempt(None, error=f"No response within {timeout:g} s.", duration_ms=took())
	except ActionError as exc:
		# The network policy refused the address (or the host did not resolve).
		return Attempt(None, error=str(exc), permanent=isinstance(exc, PermanentError), duration_ms=took())
	except (httpx.HTTPError, OSError) as exc:
		return Attempt(None, error=f"Connection failed: {exc or type(exc).__name__}", duration_ms=took())
	excerpt = text[:RESPONSE_EXCERPT_CHARS]
	if 200 <= status < 300:
		return Attempt(status, excerpt, duration_ms=took())
	reason = "redirects are not followed" if 300 <= status < 400 else "the receiver did not answer 2xx"
	return Attempt(status, excerpt, error=f"HTTP {status}: {reason}.", duration_ms=took())


class WebhookSender:
	"""Claims one delivery, POSTs it, and records what happened (the ``apg.deliver_webhook`` task)."""

	logger = logging.getLogger("apg.webhooks")

	def __init__(self, delivery_id: str) -> None:
		self.delivery_id = delivery_id
		self.status: str | None = None

	def run(self) -> str | None:
		"""Make one attempt if the delivery is due; its status afterwards, or None when not due."""
		now = timezone.now()
		lease = timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS + 30)
		rows = WebhookDelivery.objects._unfiltered().filter(
			pk=self.delivery_id, status__in=_OPEN, next_attempt_at__lte=now + timedelta(seconds=1)
		)
		if not rows.update(attempts=F("attempts") + 1, next_attempt_at=now + lease, last_attempt_at=now):
			self._log_skipped()
			return None
		delivery = (
			WebhookDelivery.objects._unfiltered()
			.select_related("subscription", "tenant")
			.get(pk=self.delivery_id)
		)
		subscription = delivery.subscription
		is_ping = delivery.event_type == PING_EVENT_TYPE
		sent = False
		if not delivery.tenant.is_active:
			attempt = Attempt(None, error="Not sent: the organization is deactivated.", permanent=True)
		elif subscription.deleted_at is not None or not (subscription.active or is_ping):
			attempt = Attempt(
				None, error="Not sent: the subscription was disabled or deleted.", permanent=True
			)
		else:
			attempt, sent = self.attempt(delivery, subscription), True
		# A ping is tried once and is no evidence about the subscription's health; a delivery
		# that was not sent says nothing about the endpoint either.
		self.record(delivery, attempt, now=now, retry=not is_ping, counts=sent and not is_ping)
		return self.status

	def attempt(self, delivery: WebhookDelivery, subscription: WebhookSubscription) -> Attempt:
		"""Sign and POST the payload."""
		body = json.dumps(delivery.payload, separators=(",", ":"), ensure_ascii=False).encode()
		timestamp = str(int(time.time()))
		headers = {
			"Content-Type": "application/json",
			"User-Agent": USER_AGENT,
			"Webhook-Id": str(delivery.event_id),
			"Webhook-Timestamp": timestamp,
		}
		try:
			secret = decrypt(subscription.ciphertext)
		except DecryptionError as exc:
			delivery.request_headers = headers
			return Attempt(None, error=f"Not sent: {exc}")
		headers["Webhook-Signature"] = sign(secret=secret, timestamp=timestamp, body=body)
		delivery.request_headers = headers
		attempt = _send(subscription.url, body, headers)
		self._log_attempt(delivery, attempt)
		return attempt

	def record(
		self, delivery: WebhookDelivery, attempt: Attempt, *, now: datetime, retry: bool, counts: bool
	) -> None:
		"""Write the attempt's outcome, schedule a retry or give up, and keep the subscription's count.

		Args:
			delivery: The delivery as claimed (``attempts`` is this attempt's number).
			attempt: What happened.
			now: When the attempt started.
			retry: Whether a failure may be retried.
			counts: Whether the outcome counts toward the subscription's run of failures.
		"""
		number = delivery.attempts
		final = attempt.succeeded or attempt.permanent or not retry or number >= settings.WEBHOOK_MAX_ATTEMPTS
		if attempt.succeeded:
			status = WebhookDelivery.Status.SUCCEEDED
		elif final:
			status = WebhookDelivery.Status.DEAD
		else:
			status = WebhookDelivery.Status.FAILED
		delay = None if final else retry_delay(number)
		entry = {
			"attempt": number,
			"at": now.isoformat(),
			"status": attempt.status,
			"duration_ms": attempt.duration_ms,
			"error": attempt.error,
		}
		with transaction.atomic():
			written = (
				WebhookDelivery.objects._unfiltered()
				.filter(pk=delivery.pk, attempts=number, status__in=_OPEN)
				.update(
					status=status,
					next_attempt_at=None if delay is None else now + timedelta(seconds=delay),
					dispatched_at=now if delay is not None and delay <= _FAST_RETRY_SECONDS else None,
					finished_at=now if final else None,
					request_headers=delivery.request_headers,
					response_status=attempt.status,
					response_excerpt=attempt.excerpt,
					error=attempt.error,
					duration_ms=attempt.duration_ms,
					history=[*delivery.history, entry][-50:],
					updated_at=timezone.now(),
				)
			)
			self.status = status.value if written else None
			if not written:  # the lease ran out and another attempt took over
				return
			if counts:
				self.count(delivery.subscription, attempt, now=now)
			if delay is not None and delay <= _FAST_RETRY_SECONDS:
				delivery_id = str(delivery.pk)
				countdown = delay
				transaction.on_commit(
					lambda: deliver_webhook_task.apply_async(
						args=(delivery_id,), countdown=countdown, queue="steps"
					)
				)

	def count(self, subscription: WebhookSubscription, attempt: Attempt, *, now: datetime) -> None:
		"""Reset the subscription's run of failures, or extend it and disable it when it is too long."""
		rows = WebhookSubscription.objects._unfiltered().filter(pk=subscription.pk)
		if attempt.succeeded:
			rows.update(consecutive_failures=0, failing_since=None, last_success_at=now)
			return
		locked = rows.select_for_update().get()
		locked.consecutive_failures += 1
		locked.failing_since = locked.failing_since or now
		fields = ["consecutive_failures", "failing_since"]
		failing_for = (now - locked.failing_since).total_seconds()
		if (
			locked.active
			and locked.deleted_at is None
			and locked.consecutive_failures >= settings.WEBHOOK_DISABLE_AFTER_FAILURES
			and failing_for >= settings.WEBHOOK_DISABLE_AFTER_SECONDS
		):
			before = snapshot(locked)
			locked.active = False
			locked.disabled_at = now
			advice = " Fix the endpoint, then enable the subscription."
			locked.disabled_reason = (
				f"Disabled automatically after {locked.consecutive_failures} failed delivery attempts in a "
				f"row since {locked.failing_since:%Y-%m-%d %H:%M} UTC; the last: {attempt.error}"
			)[: 500 - len(advice)] + advice
			fields += ["active", "disabled_at", "disabled_reason"]
			locked.save(update_fields=[*fields, "updated_at"])
			audit_record(
				actor=None,
				tenant=locked.tenant,
				action="webhook.auto_disable",
				obj=locked,
				before=before,
				after=snapshot(locked),
			)
			forget_subscriptions(locked.tenant_id)
			self._log_disabled(locked)
			return
		locked.save(update_fields=[*fields, "updated_at"])

	# -- logging ---------------------------------------------------------------------------------

	def _extra(self, delivery: WebhookDelivery) -> dict[str, Any]:
		return {
			"tenant_id": str(delivery.tenant_id),
			"run_id": str(delivery.run_id or "-"),
			"delivery_id": str(delivery.pk),
			"subscription_id": str(delivery.subscription_id),
		}

	def _log_attempt(self, delivery: WebhookDelivery, attempt: Attempt) -> None:
		self.logger.log(
			logging.INFO if attempt.succeeded else logging.WARNING,
			"webhook %s attempt %s of %s: %s in %s ms",
			delivery.pk,
			delivery.attempts,
			delivery.event_type,
			attempt.status if attempt.status is not None else attempt.error,
			attempt.duration_ms,
			extra=self._extra(delivery) | {"status": attempt.status},
		)

	def _log_disabled(self, subscription: WebhookSubscription) -> None:
		self.logger.warning(
			"webhook subscription %s disabled after %s consecutive failed attempts",
			subscription.pk,
			subscription.consecutive_failures,
			extra={"tenant_id": str(subscription.tenant_id), "subscription_id": str(subscription.pk)},
		)

	def _log_skipped(self) -> None:
		self.logger.debug(
			"webhook delivery %s is not due (sent already, or by another worker)",
			self.delivery_id,
			extra={"delivery_id": self.delivery_id},
		)


@shared_task(name="apg.deliver_webhook", acks_late=True, ignore_result=True)
def deliver_webhook_task(delivery_id: str) -> str | None:
	"""Make a delivery's next attempt if it is due (a no-op for a duplicate message)."""
	return WebhookSender(delivery_id).run()


@shared_task(name="apg.sweep_webhook_deliveries", ignore_result=True)
def sweep_webhook_deliveries_task(limit: int = 500) -> int:
	"""Send the due deliveries no worker holds a message for (lost, crashed, or a late retry).

	Also deletes up to ``limit`` finished deliveries older than the retention period.
	"""
	now = timezone.now()
	stale = now - timedelta(seconds=settings.WEBHOOK_REDISPATCH_SECONDS)
	expired = now - timedelta(days=settings.WEBHOOK_DELIVERY_RETENTION_DAYS)
	old = list(
		WebhookDelivery.objects._unfiltered()
		.filter(finished_at__lt=expired)
		.order_by("finished_at")
		.values_list("pk", flat=True)[:limit]
	)
	if old:
		WebhookDelivery.objects._unfiltered().filter(pk__in=old).delete()
	with transaction.atomic():
		due = list(
			WebhookDelivery.objects._unfiltered()
			.select_for_update(skip_locked=True)
			.filter(status__in=_OPEN, next_attempt_at__lte=now)
			.filter(Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=stale))
			.order_by("next_attempt_at")
			.values_list("pk", flat=True)[:limit]
		)
		if not due:
			return 0
		WebhookDelivery.objects._unfiltered().filter(pk__in=due).update(dispatched_at=now)
		ids = [str(pk) for pk in due]
		transaction.on_commit(lambda: dispatch_deliveries(ids))
	return len(due)
