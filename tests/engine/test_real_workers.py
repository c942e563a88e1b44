"""The engine with real Celery workers over Redis and PostgreSQL (as in production).

In-process: a real Celery worker (threads pool) consuming this test process's broker
database, one scenario per node type and lifecycle path. Out of process: worker
processes that are SIGKILLed mid-step, and a Redis server restarted mid-run; the runs
still complete and no step attempt is recorded twice. These need PostgreSQL and Redis:
they skip on a machine without them and fail under REQUIRE_SERVICES=1 (CI).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from config.celery import app as celery_app
from config.env import BASE_DIR
from tests.conftest import need_service, port_open
from tests.engine.harness import END, START, definition, linear, node, task
from workflows.context import tenant_scope
from workflows.engine.status import TERMINAL_RUN_STATUSES, RunStatus, StepStatus
from workflows.models import Approval, Membership, Run, StepRun, Tenant, User, Workflow
from workflows.services.definitions import workflow_create, workflow_publish
from workflows.services.runs import (
	approval_decide,
	event_publish,
	run_cancel,
	run_pause,
	run_resume,
	run_start,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services]


@pytest.fixture(autouse=True)
def _real_services() -> None:
	need_service(
		"PostgreSQL and Redis",
		settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
		and bool(settings.REDIS_URL),
		"set DATABASE_URL=postgres://... and REDIS_URL=redis://... to run engine tests with real workers",
	)


@pytest.fixture
def world(tenant_factory: Callable[..., Tenant]) -> tuple[Tenant, User]:
	tenant = tenant_factory()
	return tenant, Membership.objects.for_tenant(tenant).get().user


def publish(world: tuple[Tenant, User], doc: dict[str, Any], slug: str) -> Workflow:
	tenant, owner = world
	workflow = workflow_create(actor=owner, tenant=tenant, name=slug.title(), slug=slug, definition=doc)
	workflow_publish(actor=owner, workflow=workflow)
	return workflow


def wait_for(run: Run, predicate: Callable[[Run], bool], timeout: float = 30.0) -> Run:
	deadline = time.monotonic() + timeout
	while True:
		fresh = Run.objects.for_tenant(run.tenant).get(pk=run.pk)
		if predicate(fresh):
			return fresh
		assert time.monotonic() < deadline, f"run stayed {fresh.status}: {fresh.error}"
		time.sleep(0.05)


def finished(run: Run, timeout: float = 30.0) -> Run:
	return wait_for(run, lambda r: RunStatus(r.status) in TERMINAL_RUN_STATUSES, timeout)


@pytest.fixture
def worker() -> Iterator[Any]:
	"""A real Celery worker with beat, in this process, on this process's broker database."""
	from config.embedded import EmbeddedWorker

	celery_app.conf.task_always_eager = False
	started = EmbeddedWorker(concurrency=4, with_beat=True)
	started.start()
	try:
		yield started
	finally:
		started.stop()


SCENARIOS: dict[str, tuple[dict[str, Any], dict[str, Any], Any]] = {
	"task chain": (
		linear(
			task("a", "noop.noop", input={"value": 1}),
			task("b", "transform.jq", input={"expression": ". + 1", "data": "${ .steps.a.output.value }"}),
		),
		{},
		{"result": 2},
	),
	"switch": (
		definition(
			[
				START,
				node("s", "switch", cases=[{"id": "hi", "condition": ".input.n > 5"}]),
				node("hi", "set", values="hi"),
				node("lo", "set", values="lo"),
				END,
			],
			[("start", "s"), ("s", "hi", "hi"), ("s", "lo", "default"), ("hi", "end"), ("lo", "end")],
		),
		{"n": 9},
		"hi",
	),
	"parallel and join": (
		definition(
			[
				START,
				node("f", "parallel"),
				task("a", "noop.noop", input={"value": "a"}),
				task("b", "noop.noop", input={"value": "b"}),
				node("j", "join"),
				END,
			],
			[("start", "f"), ("f", "a"), ("f", "b"), ("a", "j"), ("b", "j"), ("j", "end")],
		),
		{},
		{"a": {"value": "a"}, "b": {"value": "b"}},
	),
	"map": (
		linear(
			node(
				"m",
				"map",
				items=".input.xs",
				max_concurrency=2,
				body={
					"nodes": [
						task("sq", "transform.jq", input={"expression": ". * .", "data": "${ .item }"})
					],
					"edges": [],
				},
			)
		),
		{"xs": [1, 2, 3]},
		[{"result": 1}, {"result": 4}, {"result": 9}],
	),
	"loop": (
		linear(
			node(
				"l",
				"loop",
				mode="until",
				condition=".index >= 3",
				max_iterations=5,
				body={"nodes": [task("t", "noop.noop", input={"value": "${ .index }"})], "edges": []},
			)
		),
		{},
		{"value": 2},
	),
	"wait": (linear(node("w", "wait", duration=1), node("done", "set", values="woke")), {}, "woke"),
	"retry then fail": (
		linear(
			task(
				"f",
				"fail.fail",
				input={"code": "busy", "retryable": True},
				retry={"max_attempts": 2, "initial_interval_seconds": 1},
			)
		),
		{},
		None,
	),
	"compensation": (
		linear(
			task(
				"reserve",
				"noop.noop",
				input={"value": "R"},
				compensation={"connector": "noop", "action": "noop", "input": {"value": "${ .result }"}},
			),
			task("charge", "fail.fail", input={"code": "declined"}),
		),
		{},
		None,
	),
}
EXPECTED_STATUS = {"retry then fail": RunStatus.FAILED, "compensation": RunStatus.COMPENSATED}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_node_type_runs_on_a_real_worker(name: str, world: tuple[Tenant, User], worker: Any) -> None:
	doc, run_input, expected = SCENARIOS[name]
	workflow = publish(world, doc, slug=name.replace(" ", "-"))

	run = finished(run_start(actor=world[1], workflow=workflow, input=run_input))

	assert run.status == EXPECTED_STATUS.get(name, RunStatus.SUCCEEDED), run.error
	if run.status == RunStatus.SUCCEEDED:
		assert run.output == expected


def test_events_approvals_and_sub_workflows_on_a_real_worker(world: tuple[Tenant, User], worker: Any) -> None:
	tenant, owner = world
	publish(world, linear(node("child", "set", values="${ .input.x * 10 }")), slug="child")
	doc = linear(
		node("ev", "wait_for_event", event_type="go", correlation=".input.k"),
		node("ok", "approval", role="admin"),
		node("call", "sub_workflow", workflow="child", input={"x": "${ .steps.ev.output.payload.x }"}),
	)
	doc["edges"][2]["source_handle"] = "approved"
	parent = publish(world, doc, slug="parent")

	run = run_start(actor=owner, workflow=parent, input={"k": "K1"})
	wait_for(run, lambda r: r.status == RunStatus.WAITING)
	event_publish(actor=owner, tenant=tenant, type="go", correlation="K1", payload={"x": 4})
	with tenant_scope(tenant):
		approval = wait_for(
			run, lambda r: Approval.objects.filter(run=r, status="open").exists()
		) and Approval.objects.get(run=run)
	approval_decide(actor=owner, approval=approval, decision="approved")
	done = finished(run)

	assert done.status == RunStatus.SUCCEEDED, done.error
	assert done.output == 40


def test_pause_resume_and_cancel_on_a_real_worker(world: tuple[Tenant, User], worker: Any) -> None:
	tenant, owner = world
	workflow = publish(world, linear(node("w", "wait", duration=1), task("after")), slug="pausable")

	run = run_start(actor=owner, workflow=workflow)
	run_pause(actor=owner, run=run)
	time.sleep(1.5)  # the wait ends meanwhile, but nothing new is dispatched
	held = Run.objects.for_tenant(tenant).get(pk=run.pk)
	with tenant_scope(tenant):
		dispatched_while_paused = (
			StepRun.objects.filter(run=run, key="root:after").exclude(status=StepStatus.SCHEDULED).exists()
		)
	run_resume(actor=owner, run=run)
	done = finished(run)
	other = run_start(actor=owner, workflow=workflow)
	cancelled = run_cancel(actor=owner, run=other)

	assert held.status == RunStatus.PAUSED
	assert not dispatched_while_paused
	assert done.status == RunStatus.SUCCEEDED
	assert cancelled.status == RunStatus.CANCELLED


# --- worker processes killed, Redis restarted ---------------------------------------------------


def _free_port() -> int:
	with socket.socket() as s:
		s.bind(("127.0.0.1", 0))
		return s.getsockname()[1]


def _database_url() -> str:
	db = settings.DATABASES["default"]
	auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
	return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _env(redis_url: str) -> dict[str, str]:
	env = {k: v for k, v in os.environ.items() if not k.startswith(("COV_", "PYTEST_"))}
	env |= {
		"DATABASE_URL": _database_url(),
		"REDIS_URL": redis_url,
		"SECRET_KEY": settings.SECRET_KEY,
		"STEP_LEASE_SECONDS": "5",
		"STEP_REDISPATCH_SECONDS": "3",
		"LOG_LEVEL": "WARNING",
		"DATABASE_POOL_MAX_SIZE": "0",
	}
	return env


def _worker_process(redis_url: str, tmp: Path, name: str) -> subprocess.Popen[bytes]:
	log = (tmp / f"{name}.log").open("wb")
	return subprocess.Popen(
		[
			sys.executable,
			"-m",
			"celery",
			"-A",
			"config",
			"worker",
			"-B",
			"-Q",
			"engine,steps,steps.cpu",
			"--pool",
			"threads",
			"-c",
			"4",
			"-n",
			f"{name}@%h",
			"--without-gossip",
			"--without-mingle",
			"-s",
			str(tmp / f"{name}-beat"),
		],
		cwd=BASE_DIR,
		env=_env(redis_url),
		stdout=log,
		stderr=subprocess.STDOUT,
		start_new_session=True,
	)


class SupervisedWorker:
	"""A worker process restarted whenever it exits, as systemd's Restart=always does in production.

	kombu's Redis transport can kill a worker while it reconnects after Redis restarts;
	the documented deployment supervises workers, and so does this test.
	"""

	def __init__(self, redis_url: str, tmp: Path, name: str) -> None:
		self.redis_url, self.tmp, self.name = redis_url, tmp, name
		self.restarts = 0
		self._stop = threading.Event()
		self.process = _worker_process(redis_url, tmp, f"{name}-0")
		self._thread = threading.Thread(target=self._watch, daemon=True)
		self._thread.start()

	def _watch(self) -> None:
		while not self._stop.wait(0.5):
			if self.process.poll() is not None:
				self.restarts += 1
				self.process = _worker_process(self.redis_url, self.tmp, f"{self.name}-{self.restarts}")

	def stop(self) -> None:
		self._stop.set()
		self._thread.join(5)
		if self.process.poll() is None:
			_kill(self.process)

	def logs(self) -> str:
		return "\n".join(p.read_text()[-1500:] for p in sorted(self.tmp.glob(f"{self.name}-*.log")))


def _client(redis_url: str, code: str) -> str:
	"""Run service code in a process configured for ``redis_url`` (its tasks go to that broker)."""
	result = subprocess.run(
		[sys.executable, "manage.py", "shell", "-c", code],
		cwd=BASE_DIR,
		env=_env(redis_url),
		capture_output=True,
		text=True,
		timeout=60,
		check=False,
	)
	assert result.returncode == 0, result.stderr
	return result.stdout.strip().splitlines()[-1]


def _start_run_code(workflow: Workflow, count: int = 1) -> str:
	return (
		"from workflows.models import Workflow, User; from workflows.services.runs import run_start; "
		f"w = Workflow.objects.for_tenant(__import__('workflows.models', fromlist=['Tenant']).Tenant.objects.get(pk='{workflow.tenant_id}')).get(pk='{workflow.pk}'); "
		f"print(','.join(str(run_start(actor=User.objects.get(pk='{workflow.owner_id}'), workflow=w).pk) for _ in range({count})))"
	)


def _kill(process: subprocess.Popen[bytes]) -> None:
	with_group = os.getpgid(process.pid)
	os.killpg(with_group, signal.SIGKILL)
	process.wait(10)


def _once_each(run: Run) -> dict[str, int]:
	with tenant_scope(run.tenant):
		rows = StepRun.objects.filter(run=run, status=StepStatus.SUCCEEDED).values_list("key", flat=True)
	counts: dict[str, int] = {}
	for key in rows:
		counts[key] = counts.get(key, 0) + 1
	return counts


@pytest.fixture
def broker_url() -> str:
	return str(celery_app.conf.broker_url)


def test_a_worker_killed_mid_step_loses_nothing(
	world: tuple[Tenant, User], broker_url: str, tmp_path: Path
) -> None:
	workflow = publish(
		world, linear(task("slow", "delay.sleep", input={"seconds": 3}), task("after")), slug="survivor"
	)
	first = _worker_process(broker_url, tmp_path, "first")
	second = None
	try:
		run_id = _client(broker_url, _start_run_code(workflow))
		run = Run.objects.for_tenant(world[0]).get(pk=run_id)
		with tenant_scope(world[0]):
			deadline = time.monotonic() + 60
			while not StepRun.objects.filter(run=run, key="root:slow", status=StepStatus.RUNNING).exists():
				assert time.monotonic() < deadline, (tmp_path / "first.log").read_text()[-2000:]
				time.sleep(0.05)
		_kill(first)  # SIGKILL mid-step: no cleanup, no ack
		second = _worker_process(broker_url, tmp_path, "second")
		done = finished(run, timeout=90)
	finally:
		for process in (first, second):
			if process is not None and process.poll() is None:
				_kill(process)

	assert done.status == RunStatus.SUCCEEDED, (tmp_path / "second.log").read_text()[-2000:]
	assert _once_each(done) == {"root:start": 1, "root:slow": 1, "root:after": 1, "root:end": 1}


def test_runs_complete_when_redis_restarts_mid_run(
	world: tuple[Tenant, User], redis_server_binary: str, tmp_path: Path
) -> None:
	port = _free_port()
	redis_url = f"redis://127.0.0.1:{port}/0"
	command = [
		redis_server_binary,
		"--port",
		str(port),
		"--bind",
		"127.0.0.1",
		"--save",
		"",
		"--appendonly",
		"no",
		"--dir",
		str(tmp_path),
	]

	def start_redis() -> subprocess.Popen[bytes]:
		process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
		deadline = time.monotonic() + 10
		while not port_open("127.0.0.1", port):
			assert time.monotonic() < deadline, "redis-server did not start"
			time.sleep(0.05)
		return process

	redis = start_redis()
	workflow = publish(
		world, linear(task("a"), node("w", "wait", duration=2), task("b"), task("c")), slug="redis-restart"
	)
	worker = SupervisedWorker(redis_url, tmp_path, "worker")
	try:
		run_ids = _client(redis_url, _start_run_code(workflow, count=3)).split(",")
		runs = [Run.objects.for_tenant(world[0]).get(pk=run_id) for run_id in run_ids]
		for run in runs:
			wait_for(run, lambda r: r.status == RunStatus.WAITING, timeout=60)
		redis.terminate()  # everything in Redis is lost: queued tasks, countdowns
		redis.wait(10)
		time.sleep(1)
		redis = start_redis()
		done = [finished(run, timeout=90) for run in runs]
	finally:
		worker.stop()
		redis.kill()
		redis.wait(10)

	log = worker.logs()
	assert [r.status for r in done] == [RunStatus.SUCCEEDED] * 3, log
	for run in done:
		assert _once_each(run) == {
			"root:start": 1,
			"root:a": 1,
			"root:w": 1,
			"root:b": 1,
			"root:c": 1,
			"root:end": 1,
		}
