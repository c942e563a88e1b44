"""Secrets by reference: encrypted at rest, resolved only when a step executes, never recorded."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from tests.engine.harness import END, START, definition, task
from workflows.crypto import DecryptionError, decrypt, encrypt
from workflows.engine.status import RunStatus
from workflows.errors import NotFound, PermissionDenied, ValidationFailed
from workflows.models import AuditEvent, Run, RunEvent, Secret, StepRun, Tenant, User, Workflow
from workflows.roles import Role
from workflows.services.runs import run_start
from workflows.services.secrets import secret_delete, secret_set

pytestmark = pytest.mark.django_db

TOKEN = "s3cr3t-token-value-9f8e7d"


class _Recorder(BaseHTTPRequestHandler):
	seen: list[dict[str, Any]] = []

	def do_POST(self) -> None:
		body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
		_Recorder.seen.append(
			{"authorization": self.headers.get("Authorization"), "body": json.loads(body or b"{}")}
		)
		answer = json.dumps({"echo": self.headers.get("Authorization"), "ok": True}).encode()
		self.send_response(200)
		self.send_header("Content-Type", "application/json")
		self.send_header("Content-Length", str(len(answer)))
		self.end_headers()
		self.wfile.write(answer)

	def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class names it so
		pass


@pytest.fixture
def server(settings: Any) -> Iterator[str]:
	settings.CONNECTOR_ALLOW_PRIVATE_NETWORKS = True
	_Recorder.seen = []
	httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
	thread = threading.Thread(target=httpd.serve_forever, daemon=True)
	thread.start()
	try:
		yield f"http://127.0.0.1:{httpd.server_address[1]}/hook"
	finally:
		httpd.shutdown()


def _calling(url: str, secret: str = "api_key") -> dict[str, Any]:
	call = task(
		"call",
		"http.request",
		input={
			"method": "POST",
			"url": url,
			"auth": {"type": "bearer", "token": "${ .secrets." + secret + " }"},
			"body": {"note": "hi"},
		},
	)
	return definition([START, call, END], [("start", "call"), ("call", "end")])


def test_a_secret_is_used_by_reference_and_never_recorded(
	tenant: Tenant,
	owner: User,
	publish: Callable[..., Workflow],
	settle: Callable[..., Any],
	server: str,
	eager: None,
) -> None:
	secret_set(actor=owner, tenant=tenant, name="api_key", value=TOKEN, description="billing API")
	workflow = publish(_calling(server))

	run = settle(run_start, actor=owner, workflow=workflow)
	run = Run.objects.for_tenant(tenant).get(pk=run.pk)

	assert run.status == RunStatus.SUCCEEDED
	assert _Recorder.seen[0]["authorization"] == f"Bearer {TOKEN}"
	step = StepRun.objects.for_tenant(tenant).get(run=run, key="root:call")
	recorded = json.dumps(
		[
			step.input,
			step.output,
			run.output,
			run.state,
			list(RunEvent.objects.for_tenant(tenant).filter(run=run).values_list("data", flat=True)),
		]
	)
	assert TOKEN not in recorded
	assert "secret://api_key" in json.dumps(step.input)
	assert step.output["body"]["echo"] == "Bearer ***"
	stored = Secret.objects.for_tenant(tenant).get(name="api_key")
	assert TOKEN not in stored.ciphertext
	assert decrypt(stored.ciphertext) == TOKEN
	assert TOKEN not in json.dumps(
		list(AuditEvent.objects.for_tenant(tenant).values_list("changes", flat=True))
	)


def test_an_unknown_secret_fails_the_step_saying_how_to_fix_it(
	tenant: Tenant,
	owner: User,
	publish: Callable[..., Workflow],
	settle: Callable[..., Any],
	server: str,
	eager: None,
) -> None:
	secret_set(actor=owner, tenant=tenant, name="other", value="x")
	workflow = publish(_calling(server))
	secret_set(actor=owner, tenant=tenant, name="api_key", value=TOKEN)
	secret_delete(actor=owner, tenant=tenant, name="api_key")

	run = Run.objects.for_tenant(tenant).get(pk=settle(run_start, actor=owner, workflow=workflow).pk)

	assert run.status == RunStatus.FAILED
	assert run.error["code"] == "unknown_secret"
	assert "secret 'api_key' is not defined" in run.error["message"]
	assert "set_secret" in run.error["message"]
	assert _Recorder.seen == []


def test_secret_rules(tenant: Tenant, owner: User, member_factory: Callable[..., User]) -> None:
	viewer = member_factory(tenant, Role.VIEWER)

	with pytest.raises(ValidationFailed, match="not a valid secret name"):
		secret_set(actor=owner, tenant=tenant, name="bad name", value="x")
	with pytest.raises(ValidationFailed, match="1 to"):
		secret_set(actor=owner, tenant=tenant, name="empty", value="")
	with pytest.raises(PermissionDenied):
		secret_set(actor=viewer, tenant=tenant, name="mine", value="x")
	with pytest.raises(NotFound):
		secret_delete(actor=owner, tenant=tenant, name="nothing")
	first = secret_set(actor=owner, tenant=tenant, name="rotating", value="one")
	second = secret_set(actor=owner, tenant=tenant, name="rotating", value="two")

	assert first.pk == second.pk
	assert decrypt(Secret.objects.for_tenant(tenant).get(name="rotating").ciphertext) == "two"
	assert AuditEvent.objects.for_tenant(tenant).filter(action="secret.update").count() == 1


def test_encryption_round_trip_and_key_change(settings: Any) -> None:
	token = encrypt("value")

	assert decrypt(token) == "value"
	settings.SECRETS_ENCRYPTION_KEY = "bm90LWEtcmVhbC1rZXktYnV0LTMyLWJ5dGVzLWxvbmc="
	with pytest.raises(DecryptionError, match="was SECRETS_ENCRYPTION_KEY or SECRET_KEY changed"):
		decrypt(token)


def test_set_secret_command_reads_the_value_from_stdin(
	tenant: Tenant, owner: User, monkeypatch: pytest.MonkeyPatch
) -> None:
	monkeypatch.setattr("sys.stdin", io.StringIO("from-stdin\n"))
	out = io.StringIO()

	call_command("set_secret", "cli_key", "--tenant", tenant.slug, stdout=out)

	assert "stored" in out.getvalue()
	assert decrypt(Secret.objects.for_tenant(tenant).get(name="cli_key").ciphertext) == "from-stdin"
	monkeypatch.setattr("sys.stdin", io.StringIO("x"))
	with pytest.raises(CommandError, match="No organization"):
		call_command("set_secret", "k", "--tenant", "nowhere")
	monkeypatch.setattr("sys.stdin", io.StringIO("x"))
	with pytest.raises(CommandError, match="not a valid secret name"):
		call_command("set_secret", "bad name", "--tenant", tenant.slug)
