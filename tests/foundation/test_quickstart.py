"""quickstart: one command sets up and serves web + embedded worker; the embedded worker runs tasks."""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from config.celery import app as celery_app
from config.embedded import EmbeddedWorker, autostart, embedded_worker
from config.env import BASE_DIR
from workflows.models import Membership, Tenant, User

pytestmark = pytest.mark.django_db


def _run(*args: str) -> str:
	out = io.StringIO()
	call_command("quickstart", *args, stdout=out)
	return out.getvalue()


def test_setup_creates_the_demo_tenant_and_owner_and_a_second_run_keeps_them(
	monkeypatch: pytest.MonkeyPatch,
) -> None:
	monkeypatch.delenv("QUICKSTART_PASSWORD", raising=False)
	monkeypatch.delenv("QUICKSTART_USERNAME", raising=False)
	monkeypatch.delenv("QUICKSTART_TENANT", raising=False)

	first = _run("--no-serve")
	password = re.search(r"Password:\s+(\S+)", first)
	second = _run("--no-serve")

	assert password is not None
	owner = User.objects.get(username="owner")
	assert owner.check_password(password.group(1))
	assert "Organization: Demo Organization (demo)" in first
	assert "unchanged" in second
	assert Tenant.objects.filter(slug="demo").count() == 1
	assert Membership.objects.for_tenant(Tenant.objects.get(slug="demo")).get(user=owner).role == "owner"


def test_credentials_from_the_environment(monkeypatch: pytest.MonkeyPatch, user_factory: object) -> None:
	monkeypatch.setenv("QUICKSTART_USERNAME", "ada")
	monkeypatch.setenv("QUICKSTART_PASSWORD", "analytical engine 1843")
	monkeypatch.setenv("QUICKSTART_TENANT", "lovelace")

	output = _run("--no-serve")
	monkeypatch.setenv("QUICKSTART_PASSWORD", "a different phrase 1852")
	_run("--no-serve")

	assert "Username:     ada" in output
	assert "analytical engine 1843" in output
	assert User.objects.get(username="ada").check_password("a different phrase 1852")


def test_an_existing_user_joins_an_existing_tenant(
	tenant: Tenant, user_factory: object, monkeypatch: pytest.MonkeyPatch
) -> None:
	from workflows.defaults import ensure_demo_account

	monkeypatch.delenv("QUICKSTART_PASSWORD", raising=False)
	account = ensure_demo_account(username="latecomer", tenant_slug=tenant.slug)

	assert account.created
	assert Membership.objects.for_tenant(tenant).filter(user__username="latecomer", role="owner").exists()


def test_bad_port_and_busy_port_are_clear_errors() -> None:
	with socket.socket() as busy:
		busy.bind(("127.0.0.1", 0))
		busy.listen()
		port = busy.getsockname()[1]
		with pytest.raises(CommandError, match=f"Cannot listen on 127.0.0.1:{port}"):
			_run("--port", str(port))
	with pytest.raises(CommandError, match="--port must be from 1 to 65535"):
		_run("--port", "70000")


def test_embedded_worker_runs_real_tasks_over_the_configured_broker() -> None:
	received: list[str] = []
	done = threading.Event()

	@celery_app.task(name="tests.quickstart.record")
	def record(value: str) -> None:
		received.append(value)
		done.set()

	worker = EmbeddedWorker(concurrency=2, with_beat=True)
	worker.start()
	try:
		assert worker.running
		worker.start()  # starting twice is harmless
		marker = f"hello-{time.monotonic_ns()}"
		record.apply_async(args=(marker,), queue="steps")
		assert done.wait(15), "the embedded worker did not run the task"
	finally:
		worker.stop()

	assert marker in received
	assert not worker.running


def test_autostart_follows_the_setting(settings: object) -> None:
	from django.conf import settings as django_settings

	assert django_settings.EMBEDDED_WORKER is False  # tests configure it off
	assert autostart() is None
	assert embedded_worker() is embedded_worker()


def _free_port() -> int:
	with socket.socket() as s:
		s.bind(("127.0.0.1", 0))
		return s.getsockname()[1]


@pytest.mark.slow
def test_quickstart_serves_login_dashboard_and_readyz_then_stops_on_ctrl_c(tmp_path: Path) -> None:
	port = _free_port()
	env = {
		k: v
		for k, v in os.environ.items()
		if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}
	}
	env |= {"DATA_DIR": str(tmp_path), "QUICKSTART_PASSWORD": "quick start phrase 42"}
	log_path = tmp_path / "quickstart.log"
	log = log_path.open("w")
	process = subprocess.Popen(
		[sys.executable, "manage.py", "quickstart", "--port", str(port)],
		cwd=BASE_DIR,
		env=env,
		stdout=log,
		stderr=subprocess.STDOUT,
		text=True,
	)
	base = f"http://127.0.0.1:{port}"
	try:
		deadline = time.monotonic() + 150
		while True:
			try:
				with urllib.request.urlopen(f"{base}/healthz", timeout=1) as response:
					assert response.status == 200
					break
			except (urllib.error.URLError, ConnectionError):
				assert process.poll() is None, log_path.read_text()
				assert time.monotonic() < deadline, (
					f"quickstart did not serve /healthz within 150 s:\n{log_path.read_text()}"
				)
				time.sleep(0.3)
		with urllib.request.urlopen(f"{base}/readyz", timeout=60) as response:
			ready = response.status
		jar = CookieJar()
		opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
		login_page = opener.open(f"{base}/", timeout=60).read().decode()
		csrf = next(c.value for c in jar if c.name == "csrftoken")
		form = f"username=owner&password=quick+start+phrase+42&csrfmiddlewaretoken={csrf}".encode()
		request = urllib.request.Request(
			f"{base}/accounts/login/", data=form, headers={"Referer": f"{base}/accounts/login/"}
		)
		dashboard = opener.open(request, timeout=60).read().decode()
	finally:
		process.send_signal(signal.SIGINT)
		process.wait(timeout=30)
		log.close()
	output = log_path.read_text()

	assert ready == 200
	assert 'type="password"' in login_page
	assert "<h1>Demo Organization</h1>" in dashboard
	assert process.returncode == 0
	assert f"Serving on http://127.0.0.1:{port}/" in output
	assert "Stopped." in output
