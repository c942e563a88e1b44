"""The public webhook endpoint: ``POST /hooks/<token>`` starts a run of the trigger's workflow.

No session or API token: the caller proves it holds the trigger's secret by signing the
request (see docs/triggers.md). Every signature failure (missing, wrong, stale) gets the
same 401 and starts nothing; the JSON body becomes the run input.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Never

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from workflows.api.errors import problem
from workflows.context import tenant_scope
from workflows.crypto import DecryptionError
from workflows.errors import Conflict, ValidationFailed, find_unstorable
from workflows.expressions.errors import format_bytes
from workflows.models import Trigger
from workflows.services.triggers import (
	MAX_WEBHOOK_BODY,
	SIGNATURE_HEADER,
	TIMESTAMP_HEADER,
	webhook_signature_valid,
	webhook_trigger_find,
	webhook_trigger_fire,
)

__all__ = ["webhook"]

logger = logging.getLogger("apg.triggers")

_PROBLEM = "application/problem+json"


def _log_secret_unreadable(trigger: Trigger, error: Exception) -> None:
	logger.error(
		"webhook trigger %s cannot verify requests: %s Rotate its secret.",
		trigger.pk,
		error,
		extra={"tenant_id": str(trigger.tenant_id), "trigger_id": str(trigger.pk)},
	)


def _log_signature_rejected(trigger: Trigger, request: HttpRequest) -> None:
	logger.warning(
		"webhook trigger %s refused a request: bad, missing or stale signature",
		trigger.pk,
		extra={
			"tenant_id": str(trigger.tenant_id),
			"trigger_id": str(trigger.pk),
			"has_signature": SIGNATURE_HEADER in request.headers,
			"has_timestamp": TIMESTAMP_HEADER in request.headers,
		},
	)


def _problem(
	status: int,
	detail: str,
	kind: str,
	*,
	errors: list[dict[str, str]] | None = None,
	title: str | None = None,
	headers: dict[str, str] | None = None,
) -> JsonResponse:
	body = problem(status_code=status, detail=detail, kind=kind, errors=errors)
	if title is not None:
		body["title"] = title
	return JsonResponse(body, status=status, content_type=_PROBLEM, headers=headers)


def _no_constants(name: str) -> Never:
	raise ValueError(f"{name} is not a JSON value")


def _parse(body: bytes) -> Any:
	"""The body as JSON; ValueError says what is wrong with it."""
	try:
		data = json.loads(body, parse_constant=_no_constants)
	except RecursionError:
		raise ValueError("it is nested too deeply") from None
	where = find_unstorable(data)
	if where is not None:
		raise ValueError(
			f"it contains a NUL character (\\u0000) or an unpaired surrogate at {where or '/'}, which cannot be stored"
		)
	return data


@csrf_exempt
@require_POST
def webhook(request: HttpRequest, token: str) -> JsonResponse:
	"""Verify the signature, then start a run with the JSON body as its payload (202)."""
	trigger = webhook_trigger_find(token=token)
	if trigger is None:
		return _problem(404, "No enabled webhook trigger has this URL.", "not-found")
	limit = format_bytes(MAX_WEBHOOK_BODY)
	declared = request.META.get("CONTENT_LENGTH") or ""
	if declared.isdigit() and int(declared) > MAX_WEBHOOK_BODY:
		return _problem(413, f"The body is larger than the {limit} limit.", "too-large")
	body = request.read(MAX_WEBHOOK_BODY + 1)
	if len(body) > MAX_WEBHOOK_BODY:
		return _problem(413, f"The body is larger than the {limit} limit.", "too-large")
	try:
		secret = trigger.signing_secret()
	except DecryptionError as exc:
		_log_secret_unreadable(trigger, exc)
		secret = ""  # cannot verify: refused like a bad signature, the log says why
	if not webhook_signature_valid(
		secret=secret,
		timestamp=request.headers.get(TIMESTAMP_HEADER),
		signature=request.headers.get(SIGNATURE_HEADER),
		body=body,
	):
		_log_signature_rejected(trigger, request)
		return _problem(
			401,
			"The request signature is missing, invalid or expired.",
			"invalid-signature",
			headers={"WWW-Authenticate": 'APG-Signature realm="webhook"'},
		)
	try:
		payload = _parse(body)
	except ValueError as exc:
		return _problem(400, f"The body must be a JSON document, and is not: {exc}.", "invalid-json")
	with tenant_scope(trigger.tenant):
		try:
			run = webhook_trigger_fire(trigger=trigger, payload=payload, headers=dict(request.headers))
		except ValidationFailed as exc:
			return _problem(
				422,
				str(exc),
				"validation-error",
				title="Unprocessable input",
				errors=[{"pointer": e.pointer, "message": e.message, "hint": e.hint} for e in exc.errors],
			)
		except Conflict as exc:
			return _problem(409, str(exc), "conflict")
	return JsonResponse({"run_id": str(run.pk), "status": run.status}, status=202)
