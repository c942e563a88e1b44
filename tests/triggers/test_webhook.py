"""Webhook triggers over real HTTP: signatures, replay window, body checks, input, and 404s."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client, RequestFactory

from workflows.engine.status import RunStatus
from workflows.models import Run, Tenant, Trigger, User, Workflow
from workflows.roles import Perm
from workflows.services.definitions import workflow_archive
from workflows.services.tenancy import object_soft_delete
from workflows.services.triggers import (
	IssuedTrigger,
	trigger_delete,
	trigger_disable,
	trigger_rotate_secret,
	webhook_signature,
)
from workflows.triggers_api import webhook

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager")]

Hook = Callable[..., Any]
ORDER = {"order": "A-17", "amount": 39}
SIGNATURE_FAILURE = "The request signature is missing, invalid or expired."


@pytest.fixture
def hooked(make_trigger: Callable[..., IssuedTrigger]) -> IssuedTrigger:
	"""A webhook trigger whose input is the payload itself."""
	return make_trigger(kind="webhook", name="Shop orders")


def runs(tenant: Tenant) -> list[Run]:
	return list(Run.objects.for_tenant(tenant).order_by("created_at"))


def assert_problem(response: Any, status: int) -> dict[str, Any]:
	assert response.status_code == status
	assert response["Content-Type"] == "application/problem+json"
	body = json.loads(response.content)
	assert {"type", "title", "status", "detail"} <= body.keys()
	assert body["status"] == status
	return body


def test_a_signed_request_starts_a_run_with_the_payload_as_input(
	hooked: IssuedTrigger,
	hook: Hook,
	tenant: Tenant,
	django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
	assert hooked.secret is not None

	with django_capture_on_commit_callbacks(execute=True):
		response = hook(hooked.trigger.token, hooked.secret, ORDER)

	assert response.status_code == 202
	body = response.json()
	[run] = runs(tenant)
	assert body == {"run_id": str(run.pk), "status": body["status"]}
	assert body["status"] in {s.value for s in RunStatus}
	assert run.input == ORDER
	assert (run.trigger_kind, run.trigger_ref) == ("webhook", str(hooked.trigger.pk))
	assert run.status == RunStatus.SUCCEEDED
	assert Trigger.objects.for_tenant(tenant).get(pk=hooked.trigger.pk).last_fired_at is not None


def test_the_input_template_reads_the_payload_and_headers_but_not_credentials(
	make_trigger: Callable[..., IssuedTrigger], hook: Hook, tenant: Tenant
) -> None:
	issued = make_trigger(
		kind="webhook",
		input={
			"order": "${ .payload.data.id }",
			"amount": "${ .payload.data.total }",
			"source": '${ .headers["x-shop"] }',
			"auth": "${ .headers.authorization }",
			"cookie": "${ .headers.cookie }",
		},
	)
	assert issued.secret is not None

	response = hook(
		issued.trigger.token,
		issued.secret,
		{"data": {"id": "B-2", "total": 12.5}},
		headers={"X-Shop": "north", "Authorization": "Bearer secret-value", "Cookie": "s=1"},
	)

	assert response.status_code == 202
	[run] = runs(tenant)
	assert run.input == {"order": "B-2", "amount": 12.5, "source": "north", "auth": None, "cookie": None}


@pytest.mark.parametrize(
	"tamper",
	[
		"wrong secret",
		"missing signature",
		"missing timestamp",
		"stale timestamp",
		"future timestamp",
		"not a number",
		"altered body",
	],
)
def test_a_bad_signature_gets_the_same_401_and_starts_nothing(
	hooked: IssuedTrigger, hook: Hook, tenant: Tenant, client: Client, tamper: str
) -> None:
	secret, token = hooked.secret, hooked.trigger.token
	assert secret is not None
	now = int(time.time())
	raw = json.dumps(ORDER).encode()
	headers: dict[str, str] = {}
	if tamper == "wrong secret":
		headers = {
			"X-APG-Timestamp": str(now),
			"X-APG-Signature": webhook_signature(secret="whsec_guess", timestamp=str(now), body=raw),
		}
	elif tamper == "missing signature":
		headers = {"X-APG-Timestamp": str(now)}
	elif tamper == "missing timestamp":
		headers = {"X-APG-Signature": webhook_signature(secret=secret, timestamp=str(now), body=raw)}
	elif tamper in ("stale timestamp", "future timestamp"):
		stamp = str(now - 6 * 60 if tamper == "stale timestamp" else now + 6 * 60)
		headers = {
			"X-APG-Timestamp": stamp,
			"X-APG-Signature": webhook_signature(secret=secret, timestamp=stamp, body=raw),
		}
	elif tamper == "not a number":
		headers = {
			"X-APG-Timestamp": "soon",
			"X-APG-Signature": webhook_signature(secret=secret, timestamp="soon", body=raw),
		}
	else:
		headers = {
			"X-APG-Timestamp": str(now),
			"X-APG-Signature": webhook_signature(secret=secret, timestamp=str(now), body=raw),
		}
		raw = json.dumps(ORDER | {"amount": 1_000_000}).encode()

	response = client.post(f"/hooks/{token}", data=raw, content_type="application/json", headers=headers)

	body = assert_problem(response, 401)
	assert body["detail"] == SIGNATURE_FAILURE
	assert response["WWW-Authenticate"]
	assert runs(tenant) == []


def test_a_timestamp_within_five_minutes_is_accepted(hooked: IssuedTrigger, hook: Hook) -> None:
	assert hooked.secret is not None

	response = hook(hooked.trigger.token, hooked.secret, ORDER, timestamp=str(int(time.time()) - 4 * 60))

	assert response.status_code == 202


def test_the_signature_is_hex_hmac_sha256_of_timestamp_dot_body(hooked: IssuedTrigger, hook: Hook) -> None:
	import hashlib
	import hmac

	assert hooked.secret is not None
	stamp = str(int(time.time()))
	raw = b'{"order": "by hand"}'
	digest = hmac.new(hooked.secret.encode(), f"{stamp}.".encode() + raw, hashlib.sha256).hexdigest()

	response = hook(
		hooked.trigger.token, hooked.secret, raw, timestamp=stamp, signature=f"sha256={digest.upper()}"
	)

	assert response.status_code == 202


def test_after_rotation_only_the_new_secret_signs(
	hooked: IssuedTrigger, hook: Hook, owner: User, tenant: Tenant
) -> None:
	assert hooked.secret is not None
	rotated = trigger_rotate_secret(actor=owner, trigger=hooked.trigger)
	assert rotated.secret is not None

	old = hook(hooked.trigger.token, hooked.secret, ORDER)
	new = hook(hooked.trigger.token, rotated.secret, ORDER)

	assert (old.status_code, new.status_code) == (401, 202)
	assert len(runs(tenant)) == 1


@pytest.mark.parametrize(
	"raw",
	[
		b"order=A-17",
		b"",
		b'{"order": NaN}',
		b"\xff\xfe not utf-8",
		b"[" * 100_000,
		b'{"order": "A\\u0000B"}',
		b'{"order": "A\\ud800B"}',
	],
)
def test_a_body_that_is_not_json_gets_400_saying_so(
	hooked: IssuedTrigger, hook: Hook, tenant: Tenant, raw: bytes
) -> None:
	assert hooked.secret is not None

	response = hook(hooked.trigger.token, hooked.secret, raw)

	body = assert_problem(response, 400)
	assert "must be a JSON document" in body["detail"]
	assert runs(tenant) == []


def test_a_body_over_one_mib_gets_413_naming_the_limit(
	hooked: IssuedTrigger, hook: Hook, tenant: Tenant
) -> None:
	assert hooked.secret is not None
	raw = json.dumps({"order": "x" * (1 << 20)}).encode()

	response = hook(hooked.trigger.token, hooked.secret, raw)

	body = assert_problem(response, 413)
	assert "1 MiB" in body["detail"]
	assert runs(tenant) == []


def test_a_body_without_a_declared_length_is_capped_too(hooked: IssuedTrigger, tenant: Tenant) -> None:
	raw = b'{"order": "' + b"x" * (1 << 20) + b'"}'
	request = RequestFactory().post(
		f"/hooks/{hooked.trigger.token}", data=raw, content_type="application/json"
	)
	del request.META["CONTENT_LENGTH"]  # as a chunked upload arrives

	response = webhook(request, token=hooked.trigger.token)

	assert_problem(response, 413)
	assert runs(tenant) == []


def test_input_that_breaks_the_workflow_schema_gets_422_with_field_errors(
	hooked: IssuedTrigger, hook: Hook, tenant: Tenant
) -> None:
	assert hooked.secret is not None

	response = hook(hooked.trigger.token, hooked.secret, {"order": 17, "amount": "lots"})

	body = assert_problem(response, 422)
	assert [e["pointer"] for e in body["errors"]] == ["/input/amount", "/input/order"]
	assert all(e["message"] and e["hint"] for e in body["errors"])
	assert runs(tenant) == []


def test_a_template_that_fails_on_the_payload_gets_422(
	make_trigger: Callable[..., IssuedTrigger], hook: Hook, tenant: Tenant
) -> None:
	issued = make_trigger(kind="webhook", input={"order": "${ .payload.id | ascii_downcase }"})
	assert issued.secret is not None

	response = hook(issued.trigger.token, issued.secret, {"id": 42})

	body = assert_problem(response, 422)
	assert body["errors"][0]["pointer"] == "/input/order"
	assert "template failed" in body["errors"][0]["message"]
	assert runs(tenant) == []


def test_disabled_deleted_and_unknown_triggers_answer_404_even_when_signed(
	make_trigger: Callable[..., IssuedTrigger], hook: Hook, owner: User, tenant: Tenant
) -> None:
	disabled, deleted = make_trigger(kind="webhook"), make_trigger(kind="webhook")
	trigger_disable(actor=owner, trigger=disabled.trigger)
	trigger_delete(actor=owner, trigger=deleted.trigger)
	unknown = f"{tenant.pk.hex}-nothing-here"

	answers = [
		hook(issued.trigger.token, issued.secret or "", ORDER).status_code for issued in (disabled, deleted)
	]
	answers += [
		hook(token, "x", ORDER).status_code for token in (unknown, "short", "z" * 32 + "-abc", "a" * 200)
	]

	assert answers == [404] * 6
	assert runs(tenant) == []


def test_the_url_stops_working_when_its_workflow_or_tenant_goes(
	make_trigger: Callable[..., IssuedTrigger],
	hook: Hook,
	owner: User,
	tenant: Tenant,
	publish: Callable[..., Workflow],
) -> None:
	from tests.triggers.conftest import order_flow

	doomed = publish(order_flow(), name="Doomed")
	orphan = make_trigger(kind="webhook", workflow=doomed)
	other = make_trigger(kind="webhook")
	object_soft_delete(actor=owner, obj=doomed, perm=Perm.WORKFLOW_DELETE)

	orphaned = hook(orphan.trigger.token, orphan.secret or "", ORDER)
	tenant.is_active = False
	tenant.save()
	inactive = hook(other.trigger.token, other.secret or "", ORDER)

	assert (orphaned.status_code, inactive.status_code) == (404, 404)


def test_an_archived_workflow_gets_409(
	hooked: IssuedTrigger, hook: Hook, owner: User, workflow: Workflow, tenant: Tenant
) -> None:
	workflow_archive(actor=owner, workflow=workflow)

	response = hook(hooked.trigger.token, hooked.secret or "", ORDER)

	assert "archived" in assert_problem(response, 409)["detail"]
	assert runs(tenant) == []


def test_only_post_is_allowed_and_no_csrf_token_or_login_is_needed(hooked: IssuedTrigger, hook: Hook) -> None:
	strict = Client(enforce_csrf_checks=True)

	got = strict.get(f"/hooks/{hooked.trigger.token}")
	posted = hook(hooked.trigger.token, hooked.secret or "", ORDER, client_=strict)

	assert got.status_code == 405
	assert posted.status_code == 202


def test_the_signing_secret_is_stored_encrypted_and_still_verifies(
	hooked: IssuedTrigger,
	hook: Hook,
	django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
	assert hooked.secret is not None
	stored = Trigger.objects._unfiltered().values_list("secret", flat=True).get(pk=hooked.trigger.pk)

	with django_capture_on_commit_callbacks(execute=True):
		response = hook(hooked.trigger.token, hooked.secret, ORDER)

	assert hooked.secret not in stored
	assert not stored.startswith("whsec_")
	assert response.status_code == 202


def test_a_secret_stored_before_encryption_verifies_and_the_migration_encrypts_it(
	hooked: IssuedTrigger,
	hook: Hook,
	django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
	from django.apps import apps

	from workflows.crypto import decrypt

	migration = __import__("workflows.migrations.0009_trigger_secrets_encrypted", fromlist=["x"])
	assert hooked.secret is not None
	Trigger.objects._unfiltered().filter(pk=hooked.trigger.pk).update(
		secret=hooked.secret
	)  # as stored before

	with django_capture_on_commit_callbacks(execute=True):
		before = hook(hooked.trigger.token, hooked.secret, ORDER)
	migration.encrypt_plain_secrets(apps, None)
	stored = Trigger.objects._unfiltered().values_list("secret", flat=True).get(pk=hooked.trigger.pk)
	with django_capture_on_commit_callbacks(execute=True):
		after = hook(hooked.trigger.token, hooked.secret, ORDER)

	assert before.status_code == after.status_code == 202
	assert stored != hooked.secret
	assert decrypt(stored) == hooked.secret


def test_a_secret_the_keys_cannot_decrypt_refuses_requests_and_says_why_in_the_log(
	hooked: IssuedTrigger, hook: Hook, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
	assert hooked.secret is not None
	settings.SECRETS_ENCRYPTION_KEY = "bm90LXRoZS1rZXktdGhhdC1lbmNyeXB0ZWQtaXQtMTI="  # another key

	response = hook(hooked.trigger.token, hooked.secret, ORDER)

	assert_problem(response, 401)
	assert f"webhook trigger {hooked.trigger.pk} cannot verify requests" in caplog.text
	assert "Rotate its secret" in caplog.text
