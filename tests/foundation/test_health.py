"""/healthz and /readyz, including a real Redis stopped under a running process."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client, override_settings

from config.celery import app as celery_app
from config.settings.base import redis_channel_layer
from tests.conftest import port_open
from workflows.health import ReadinessView

pytestmark = pytest.mark.django_db


def test_healthz_answers_without_checking_anything(client: Client) -> None:
	response = client.get("/healthz")

	assert response.status_code == 200
	assert response.json() == {"status": "ok"}


def test_readyz_is_200_when_everything_is_reachable(client: Client) -> None:
	response = client.get("/readyz")

	assert response.status_code == 200
	assert response.json()["checks"] == {
		"database": "ok",
		"broker": "ok",
		"channel_layer": "ok",
		"cache": "ok",
	}


def test_readyz_names_a_failed_check(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
	def broken() -> None:
		raise ConnectionRefusedError("db down")

	monkeypatch.setitem(ReadinessView.checks, "database", broken)

	response = client.get("/readyz")

	assert response.status_code == 503
	assert response.json()["failed"] == ["database"]
	assert response.json()["checks"]["database"] == "error: ConnectionRefusedError"
	assert "db down" not in response.content.decode()  # no internals outside DEBUG


def _free_port() -> int:
	with socket.socket() as s:
		s.bind(("127.0.0.1", 0))
		return s.getsockname()[1]


@pytest.fixture
def own_redis(redis_server_binary: str, tmp_path: Any) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
	"""A redis-server of this test's own, on a free port, that the test may stop."""
	port = _free_port()
	process = subprocess.Popen(
		[
			redis_server_binary,
			"--port",
			str(port),
			"--bind",
			"127.0.0.1",
			"--save",
			"",
			"--dir",
			str(tmp_path),
		],
		stdout=subprocess.DEVNULL,
		stderr=subprocess.DEVNULL,
	)
	deadline = time.monotonic() + 10
	while not port_open("127.0.0.1", port):
		assert time.monotonic() < deadline, "redis-server did not start"
		time.sleep(0.05)
	try:
		yield process, f"redis://127.0.0.1:{port}/0"
	finally:
		process.kill()
		process.wait()


def test_readyz_reports_a_stopped_redis_as_503(
	client: Client, own_redis: tuple[subprocess.Popen[bytes], str]
) -> None:
	process, url = own_redis
	redis_settings = {
		"CACHES": {
			"default": {
				"BACKEND": "config.cache.RedisCache",
				"LOCATION": url,
				"OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
			}
		},
		"CHANNEL_LAYERS": {"default": redis_channel_layer(url)},
	}
	previous_broker = celery_app.conf["broker_url"]
	celery_app.conf["broker_url"] = url
	try:
		with override_settings(**redis_settings):
			up = client.get("/readyz")
			process.terminate()
			process.wait()
			started = time.monotonic()
			down = client.get("/readyz")
			took = time.monotonic() - started
	finally:
		celery_app.conf["broker_url"] = previous_broker

	assert up.status_code == 200, up.json()
	assert down.status_code == 503
	assert down.json()["status"] == "unavailable"
	assert set(down.json()["failed"]) == {"broker", "cache", "channel_layer"}
	assert down.json()["checks"]["database"] == "ok"
	assert took < 10
