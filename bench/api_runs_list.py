"""Listing runs: ``GET /api/v1/runs/`` over 1,000,000 runs, 50 concurrent clients, real servers.

1. Data (cached): the database ``apg_bench_list`` holds ``--runs`` runs (default 1,000,000)
   across four tenants of unequal size (50/30/15/5 %), 25 workflows each (a few busy, many
   quiet), created over 90 days (more recently than long ago), with the statuses, tags,
   priorities, triggers, inputs, outputs, errors and engine state a real history has. The runs
   are written with ``INSERT ... SELECT generate_series`` into the real table (ids are uuid7 of
   their creation time, as the engine's are); the tenants, users and workflows go through the
   services. A later run of the benchmark finds them (a signature row in ``bench_meta``) and
   skips the load; ``--reload`` forces it. Migrations are applied either way.
2. Profile (in this process, before the load): each kind of request once through Django with
   its SQL captured: the number of queries and, with ``--explain``, ``EXPLAIN ANALYZE`` of
   the list query.
3. Load: ``--servers`` Daphne processes (``daphne config.asgi:application``, as deployed; the
   default 2 matches a 2-core machine), each on its own port; ``--clients`` simulated users
   (default 50) in ``--client-procs`` processes, each with its own API token and keep-alive
   connection, spread over the servers. A user sends a request, waits for the answer, thinks
   (exponential, mean ``--think`` seconds), and so on for ``--duration`` seconds after a
   warm-up. Requests: the run list with typical filters (none, status, workflow, tag, time
   range, status and workflow) and its next pages through the ``next`` cursor; and, one in
   five, the baseline ``GET /api/v1/me/``: an authenticated endpoint with the same
   authentication, tenant resolution, rate limiting and middleware but almost no work of its own.
   Both are measured at the same time under the same load, so the ratio isolates the list's own
   cost.

Target: p99 of the run list <= 50 ms. The last line prints p50/p99 of the list and of the
baseline and their ratio.

``--index "CREATE INDEX ..."`` (repeatable) creates an index in the bench database before
measuring (to try a proposed one; it stays there until ``--reload``); the indexes present
besides the migrations' are printed.

    uv run python bench/api_runs_list.py [--runs 1000000] [--clients 50] [--servers 2]
        [--duration 60] [--think 1.0] [--explain] [--reload] [--index SQL]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import socket
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402

TARGET_P99 = 0.050
# 2: the runs' tags also in their own table (workflows_runtag), as migration 0010 fills it.
DATASET_VERSION = 2
TENANTS = (("acme", 0.50), ("globex", 0.30), ("initech", 0.15), ("umbrella", 0.05))
WORKFLOWS_PER_TENANT = 25
TEAMS = ("billing", "growth", "ops", "data", "search", "mobile", "web", "infra")
BASELINE_SHARE = 0.2
BASE_PORT = 8710

# The engine's state of a finished five-step run (about 1.6 kB, what the list query reads from
# each row unless it leaves the column out); __RUN__ is replaced by the run's id.
_STATE_TEMPLATE = (
	'{"v": 1, "status": "succeeded", "input": {"order_id": 17, "amount": 120}, "meta": {"id": "__RUN__", '
	'"run_id": "__RUN__", "workflow": "flow", "workflow_id": "__RUN__", "version": 1, "tenant": "t", '
	'"started_at": "2026-11-28T06:02:05.802960+00:00", "trigger": "manual", "parent_run_id": null, '
	'"secret_names": []}, "frames": {"root": {"id": "root", "graph": "", "parent_frame": null, '
	'"parent_key": null, "vars": {}, "nodes": {'
	+ ", ".join(
		f'"s{i}": {{"key": "root:s{i}", "status": "succeeded", "attempt": 1, "tags": [], "seq": {2 * i + 1}, '
		f'"output": {{"value": {i}}}, "handle": "out", "done_seq": {2 * i + 2}}}'
		for i in range(7)
	)
	+ '}, "status": "succeeded", "last": "s6", "ended": "s6", "error": null}}, "seq": 14, '
	'"completed": [], "held": [], "compensation": null, "output": {"value": 4}, "error": null}'
)


# --- data -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TenantData:
	"""One tenant of the data set, as the clients need it."""

	slug: str
	tenant_id: str
	owner_id: str
	workflow_ids: list[str]
	share: float


def _database_exists(env: common.BenchEnv) -> bool:
	import psycopg

	with psycopg.connect(env.postgres_url, autocommit=True) as conn:
		return (
			conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (env.database,)).fetchone()
			is not None
		)


def _recreate_database(env: common.BenchEnv) -> None:
	import psycopg
	from psycopg import sql

	name = sql.Identifier(env.database)
	with psycopg.connect(env.postgres_url, autocommit=True) as conn:
		conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
		conn.execute(sql.SQL("CREATE DATABASE {}").format(name))


def _signature(runs: int) -> str:
	return f"v{DATASET_VERSION}:runs={runs}:tenants={len(TENANTS)}:workflows={WORKFLOWS_PER_TENANT}"


def _stored_signature(env: common.BenchEnv) -> str | None:
	"""The data set's signature, read before Django connects (the database may be dropped next)."""
	import psycopg

	with psycopg.connect(env.database_url, autocommit=True) as conn:
		if conn.execute("SELECT to_regclass('bench_meta')").fetchone() == (None,):
			return None
		row = conn.execute("SELECT value FROM bench_meta WHERE key = 'signature'").fetchone()
		return None if row is None else str(row[0])


def ensure_dataset(env: common.BenchEnv, runs: int, *, reload: bool) -> list[TenantData]:
	"""The data set, loaded unless the database already holds it; its tenants."""
	from django.core.management import call_command

	cached = not reload and _database_exists(env) and _stored_signature(env) == _signature(runs)
	if not cached:
		_recreate_database(env)
	common.setup_django()
	call_command("migrate", verbosity=0, interactive=False)
	if cached:
		print(f"data: {runs:,} runs found in {env.database} (cached; --reload to load again)")
		return _tenants()
	started = time.perf_counter()
	load(runs)
	print(f"data: loaded {runs:,} runs into {env.database} in {time.perf_counter() - started:.0f} s")
	return _tenants()


def load(runs: int) -> None:
	"""Tenants, owners and workflows through the services; then the runs and their tags in SQL; then ANALYZE."""
	from importlib import import_module

	from django.db import connection, transaction

	from bench.common import make_tenant, make_workflow, noop_chain
	from workflows.models import WorkflowVersion

	for slug, share in TENANTS:
		tenant, owner = make_tenant(slug)
		workflows = [
			make_workflow(tenant, owner, f"{slug.capitalize()} flow {i:02d}", noop_chain(5))
			for i in range(WORKFLOWS_PER_TENANT)
		]
		count = (
			round(runs * share)
			if slug != TENANTS[-1][0]
			else runs - sum(round(runs * s) for _, s in TENANTS[:-1])
		)
		with transaction.atomic(), connection.cursor() as cursor:
			cursor.execute(
				"CREATE TEMP TABLE bench_wf (idx int, workflow_id uuid, version_id uuid) ON COMMIT DROP"
			)
			for idx, workflow in enumerate(workflows):
				version = (
					WorkflowVersion.objects._unfiltered()
					.filter(workflow=workflow)
					.order_by("-number")
					.first()
				)
				assert version is not None
				cursor.execute(
					"INSERT INTO bench_wf VALUES (%s, %s, %s)", (idx, str(workflow.pk), str(version.pk))
				)
			# Chunks keep each statement's memory small; each chunk is one INSERT ... SELECT.
			for first in range(0, count, 200_000):
				cursor.execute(
					_RUNS_SQL,
					{
						"tenant": str(tenant.pk),
						"owner": str(owner.pk),
						"first": first + 1,
						"last": min(count, first + 200_000),
						"workflows": len(workflows),
						"state": _STATE_TEMPLATE,
					},
				)
		print(f"  {slug}: {count:,} runs")
	with connection.cursor() as cursor:
		# The tag rows the engine writes with each run, in one statement as the migration's backfill.
		cursor.execute(import_module("workflows.migrations.0010_run_tags").BACKFILL_SQL)
		cursor.execute("ANALYZE workflows_run")
		cursor.execute("ANALYZE workflows_runtag")
		cursor.execute("CREATE TABLE IF NOT EXISTS bench_meta (key text PRIMARY KEY, value text NOT NULL)")
		cursor.execute(
			"INSERT INTO bench_meta VALUES ('signature', %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
			(_signature(runs),),
		)


# One INSERT ... SELECT per chunk. Recent runs (the last hour) are still pending, running or
# waiting; older ones finished (a few wait for days). Workflow popularity and customers are skewed.
_RUNS_SQL = """
WITH base AS (
	SELECT g,
		now() - interval '90 days' * power(random(), 1.3) - interval '1 minute' * random() AS created,
		random() AS r_status, random() AS r_wf, random() AS r_env, random() AS r_team,
		random() AS r_cust, random() AS r_prio, random() AS r_trig, random() AS r_amount
	FROM generate_series(%(first)s, %(last)s) AS g
), shaped AS (
	SELECT b.*, w.workflow_id, w.version_id,
		(lpad(to_hex((extract(epoch FROM b.created) * 1000)::bigint), 12, '0') || '7'
			|| substr(md5(random()::text), 1, 3) || substr('89ab', 1 + floor(random() * 4)::int, 1)
			|| substr(md5(random()::text), 1, 15))::uuid AS id,
		CASE WHEN b.created > now() - interval '1 hour' THEN
			CASE WHEN r_status < 0.50 THEN 'succeeded' WHEN r_status < 0.75 THEN 'running'
				WHEN r_status < 0.90 THEN 'waiting' WHEN r_status < 0.95 THEN 'pending'
				WHEN r_status < 0.98 THEN 'failed' ELSE 'paused' END
		ELSE
			CASE WHEN r_status < 0.895 THEN 'succeeded' WHEN r_status < 0.965 THEN 'failed'
				WHEN r_status < 0.995 THEN 'cancelled' ELSE 'waiting' END
		END AS status,
		CASE WHEN r_trig < 0.5 THEN 'manual' WHEN r_trig < 0.75 THEN 'cron'
			WHEN r_trig < 0.9 THEN 'webhook' ELSE 'event' END AS trigger_kind
	FROM base b
	JOIN bench_wf w ON w.idx = least(floor(power(b.r_wf, 2.5) * %(workflows)s)::int, %(workflows)s - 1)
)
INSERT INTO workflows_run (
	id, created_at, updated_at, tenant_id, workflow_id, version_id, status, priority, input, output,
	error, state, tags, parent_run_id, parent_step_key, trigger_kind, trigger_ref, started_by_id,
	started_at, finished_at, last_seq
)
SELECT id, created,
	created + interval '2 seconds',
	%(tenant)s::uuid, workflow_id, version_id, status,
	CASE WHEN r_prio < 0.1 THEN 9 WHEN r_prio < 0.2 THEN 1 ELSE 5 END,
	jsonb_build_object('order_id', g, 'amount', floor(r_amount * 1000)::int, 'currency', 'EUR'),
	CASE WHEN status = 'succeeded' THEN jsonb_build_object('value', floor(r_amount * 1000)::int, 'ok', true) END,
	CASE WHEN status = 'failed' THEN
		'{"code": "http_error", "message": "upstream answered 503 Service Unavailable", "retryable": true}'::jsonb
		WHEN status = 'cancelled' THEN '{"code": "cancelled", "message": "cancelled by an operator"}'::jsonb END,
	CASE WHEN status = 'pending' THEN NULL ELSE replace(%(state)s, '__RUN__', id::text)::jsonb END,
	to_jsonb(array_remove(ARRAY[
		CASE WHEN r_env < 0.8 THEN 'env:prod' WHEN r_env < 0.95 THEN 'env:staging' END,
		CASE WHEN r_team < 0.6 THEN 'team:' || (ARRAY['billing','growth','ops','data','search','mobile','web','infra'])[
			1 + floor(power(r_team / 0.6, 1.5) * 8)::int] END,
		CASE WHEN r_cust < 0.2 THEN 'customer:c' || (1 + floor(power(random(), 3) * 500)::int) END
	]::text[], NULL)),
	NULL, '', trigger_kind, '',
	CASE WHEN trigger_kind = 'manual' THEN %(owner)s::uuid END,
	CASE WHEN status = 'pending' THEN NULL ELSE created + interval '50 milliseconds' END,
	CASE WHEN status IN ('succeeded', 'failed', 'cancelled')
		THEN created + interval '1 second' + interval '5 minutes' * power(random(), 4) END,
	CASE WHEN status = 'succeeded' THEN 14 WHEN status = 'pending' THEN 0 ELSE 3 + floor(random() * 10)::int END
FROM shaped
"""


def _tenants() -> list[TenantData]:
	from workflows.models import Membership, Tenant, Workflow
	from workflows.roles import Role

	found = []
	for slug, share in TENANTS:
		tenant = Tenant.objects.get(slug=slug)
		owner = Membership.objects.for_tenant(tenant).get(role=Role.OWNER).user
		workflows = [
			str(pk)
			for pk in Workflow.objects.for_tenant(tenant).order_by("name").values_list("pk", flat=True)
		]
		found.append(TenantData(slug, str(tenant.pk), str(owner.pk), workflows, share))
	return found


def extra_indexes() -> list[str]:
	"""Indexes on workflows_run that no migration made (tried with ``--index``)."""
	from django.db import connection

	from workflows.models import Run

	known = {index.name for index in Run._meta.indexes} | {"workflows_run_pkey"}
	with connection.cursor() as cursor:
		cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'workflows_run'")
		rows = cursor.fetchall()
	return [
		definition
		for name, definition in rows
		if name not in known and not name.startswith("workflows_run_") and "_id_" not in name
	]


def issue_tokens(tenants: list[TenantData], clients: int) -> list[tuple[str, TenantData]]:
	"""One API token per simulated user, users spread over the tenants by their share of runs."""
	from workflows.context import tenant_scope
	from workflows.models import Tenant, User
	from workflows.services.tokens import api_token_create

	rng = random.Random(7)
	issued = []
	for i in range(clients):
		data = (
			rng.choices(tenants, weights=[t.share for t in tenants])[0] if i >= len(tenants) else tenants[i]
		)
		tenant = Tenant.objects.get(pk=data.tenant_id)
		owner = User.objects.get(pk=data.owner_id)
		with tenant_scope(tenant):
			raw = api_token_create(actor=owner, tenant=tenant, name=f"bench-{i}").raw
		issued.append((raw, data))
	return issued


# --- requests -----------------------------------------------------------------------------------

# (scenario, weight): what a user of the run list asks for.
SCENARIOS = (
	("recent", 25),
	("status", 20),
	("workflow", 15),
	("tag", 15),
	("time_range", 10),
	("status_workflow", 5),
	("pages", 10),
)


def list_params(scenario: str, data: TenantData, rng: random.Random) -> dict[str, str]:
	"""Query parameters of one list request of ``scenario``."""
	from datetime import UTC, datetime, timedelta

	def status() -> str:
		return rng.choices(["failed", "running", "waiting", "succeeded", "cancelled"], [40, 25, 15, 15, 5])[0]

	def workflow() -> str:
		# Popular workflows are looked at more (the same skew as the runs).
		return data.workflow_ids[
			min(int(rng.random() ** 2.5 * len(data.workflow_ids)), len(data.workflow_ids) - 1)
		]

	match scenario:
		case "status":
			return {"status": status()}
		case "workflow":
			return {"workflow": workflow()}
		case "tag":
			kind = rng.random()
			if kind < 0.4:
				tag = "env:prod"
			elif kind < 0.8:
				tag = f"team:{rng.choice(TEAMS)}"
			else:
				tag = f"customer:c{1 + int(rng.random() ** 3 * 500)}"
			return {"tag": tag}
		case "time_range":
			days_ago = rng.choice([0, 1, 7, 30])
			end = datetime.now(tz=UTC) - timedelta(days=days_ago)
			return {
				"created_after": (end - timedelta(hours=rng.choice([1, 24]))).isoformat(),
				"created_before": end.isoformat(),
			}
		case "status_workflow":
			return {"status": status(), "workflow": workflow()}
		case _:
			return {"ordering": "-priority"} if rng.random() < 0.1 else {}


# --- profile (in this process) --------------------------------------------------------------------


def profile(issued: list[tuple[str, TenantData]], *, explain: bool) -> dict[str, int]:
	"""Each scenario once through Django with its queries captured; prints counts (and plans)."""
	from django.db import connection
	from django.test.utils import CaptureQueriesContext
	from rest_framework.test import APIClient

	rng = random.Random(3)
	raw, data = issued[0]
	client = APIClient(HTTP_HOST="127.0.0.1")
	client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
	counts: dict[str, int] = {}
	print(f"profile (in-process, tenant {data.slug}):")
	for scenario, _ in (("baseline", 0), *SCENARIOS):
		path = "/api/v1/me/" if scenario == "baseline" else "/api/v1/runs/"
		params = {} if scenario == "baseline" else list_params(scenario, data, rng)
		client.get(path, params)  # warm: the first request of a process imports and caches
		with CaptureQueriesContext(connection) as captured:
			started = time.perf_counter()
			response = client.get(path, params)
			took = time.perf_counter() - started
		if response.status_code != 200:
			raise SystemExit(f"{scenario}: {response.status_code} {response.content[:300]!r}")
		counts[scenario] = len(captured.captured_queries)
		print(f"  {scenario:16} {counts[scenario]:3d} queries, {common.ms(took)} in-process  {params}")
		if explain and scenario != "baseline":
			runs_sql = [q["sql"] for q in captured.captured_queries if 'FROM "workflows_run"' in q["sql"]]
			with connection.cursor() as cursor:
				cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + runs_sql[0])
				plan = [row[0] for row in cursor.fetchall()]
			print("\n".join("      " + line for line in plan))
	return counts


# --- servers ------------------------------------------------------------------------------------------


class Servers:
	"""Daphne processes (``daphne config.asgi:application``) on consecutive ports; a context manager."""

	def __init__(self, env: common.BenchEnv, count: int, *, base_port: int = BASE_PORT) -> None:
		self.env = env
		self.ports = [base_port + i for i in range(count)]
		self.procs: list[subprocess.Popen[bytes]] = []
		self._logs: list[Any] = []

	def __enter__(self) -> Servers:
		try:
			for port in self.ports:
				log = (self.env.workdir / f"daphne-{port}.log").open("wb")
				self._logs.append(log)
				self.procs.append(
					subprocess.Popen(
						[
							sys.executable,
							"-m",
							"daphne",
							"-b",
							"127.0.0.1",
							"-p",
							str(port),
							"-v",
							"0",
							"config.asgi:application",
						],
						cwd=common.ROOT,
						env=os.environ.copy(),
						stdin=subprocess.DEVNULL,
						stdout=log,
						stderr=subprocess.STDOUT,
						start_new_session=True,
					)
				)
			for port, proc in zip(self.ports, self.procs, strict=True):
				self._wait_ready(port, proc)
		except BaseException:
			self.stop()
			raise
		return self

	def __exit__(self, *exc: object) -> None:
		self.stop()

	def _wait_ready(self, port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
		import httpx

		deadline = time.monotonic() + timeout
		while time.monotonic() < deadline:
			if proc.poll() is not None:
				raise RuntimeError(
					f"daphne on port {port} exited with {proc.returncode}; see {self.env.workdir}"
				)
			with contextlib.suppress(httpx.HTTPError):
				if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
					return
			time.sleep(0.2)
		raise RuntimeError(f"daphne on port {port} not ready after {timeout:.0f} s; see {self.env.workdir}")

	def pids(self) -> list[int]:
		"""The server processes' pids."""
		return [proc.pid for proc in self.procs]

	def stop(self) -> None:
		"""SIGTERM, then SIGKILL after a grace period."""
		import signal

		for proc in self.procs:
			if proc.poll() is None:
				with contextlib.suppress(ProcessLookupError):
					proc.send_signal(signal.SIGTERM)
		for proc in self.procs:
			try:
				proc.wait(timeout=10)
			except subprocess.TimeoutExpired:
				with contextlib.suppress(ProcessLookupError):
					os.killpg(proc.pid, signal.SIGKILL)
				proc.wait(timeout=10)
		self.procs.clear()
		for log in self._logs:
			log.close()
		self._logs.clear()


def port_free(port: int) -> bool:
	"""Whether nothing listens on ``port`` of 127.0.0.1."""
	with socket.socket() as sock:
		return sock.connect_ex(("127.0.0.1", port)) != 0


# --- load (client processes) -------------------------------------------------------------------------

Sample = tuple[str, float, float, int]  # (kind, start (epoch s), latency s, status)


def client_process(
	users: list[tuple[str, TenantData, int]], warmup: float, duration: float, think: float, seed: int
) -> list[Sample]:
	"""Simulated users of one process (asyncio); the samples after the warm-up."""
	return asyncio.run(_users(users, warmup, duration, think, seed))


async def _users(
	users: list[tuple[str, TenantData, int]], warmup: float, duration: float, think: float, seed: int
) -> list[Sample]:
	began = time.time()
	measure_from, stop_at = began + warmup, began + warmup + duration
	samples: list[Sample] = []
	await asyncio.gather(
		*(
			_user(raw, data, port, measure_from, stop_at, think, random.Random(seed * 1000 + i), samples)
			for i, (raw, data, port) in enumerate(users)
		)
	)
	return samples


async def _user(
	raw: str,
	data: TenantData,
	port: int,
	measure_from: float,
	stop_at: float,
	think: float,
	rng: random.Random,
	samples: list[Sample],
) -> None:
	import httpx

	headers = {"Authorization": f"Bearer {raw}", "Accept": "application/json"}
	limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
	async with httpx.AsyncClient(
		base_url=f"http://127.0.0.1:{port}", headers=headers, limits=limits, timeout=30
	) as client:
		# Users do not start in step.
		await asyncio.sleep(rng.random() * max(think, 0.05))
		while time.time() < stop_at:
			if rng.random() < BASELINE_SHARE:
				await _get(client, "baseline", "/api/v1/me/", None, measure_from, samples)
			else:
				scenario = rng.choices([s for s, _ in SCENARIOS], [w for _, w in SCENARIOS])[0]
				body = await _get(
					client, scenario, "/api/v1/runs/", list_params(scenario, data, rng), measure_from, samples
				)
				if scenario == "pages":
					for page in (2, 3):
						if body is None or not body.get("next") or time.time() >= stop_at:
							break
						await asyncio.sleep(rng.expovariate(1 / think) if think > 0 else 0)
						body = await _get(client, f"page_{page}", body["next"], None, measure_from, samples)
			if think > 0:
				await asyncio.sleep(rng.expovariate(1 / think))


async def _get(
	client: Any,
	kind: str,
	url: str,
	params: dict[str, str] | None,
	measure_from: float,
	samples: list[Sample],
) -> dict[str, Any] | None:
	started_at = time.time()
	started = time.perf_counter()
	try:
		response = await client.get(url, params=params)
		body = response.json() if response.status_code == 200 else None
		status = response.status_code
	except Exception:  # noqa: BLE001 - a failed request is counted, not fatal
		body, status = None, 0
	latency = time.perf_counter() - started
	if started_at >= measure_from:
		samples.append((kind, started_at, latency, status))
	return body


# --- report ---------------------------------------------------------------------------------------


def report(samples: list[Sample], duration: float) -> tuple[tuple[float, float], tuple[float, float]]:
	"""Print the figures per kind of request; return (list p50, p99), (baseline p50, p99).

	A failed request (not 200, or no answer within 30 s) is counted apart, not in the latencies.
	"""
	by_kind: dict[str, list[float]] = defaultdict(list)
	errors: dict[int, int] = defaultdict(int)
	for kind, _, latency, status in samples:
		if status == 200:
			by_kind[kind].append(latency)
		else:
			errors[status] += 1
	listing = [x for kind, values in by_kind.items() if kind != "baseline" for x in values]
	baseline = by_kind["baseline"]
	print(
		f"  {len(samples):,} requests in {duration:.0f} s ({len(samples) / duration:.0f}/s); errors: {dict(errors) or 'none'}"
	)
	for kind in ["baseline", *[s for s, _ in SCENARIOS], "page_2", "page_3"]:
		values = by_kind.get(kind, [])
		if values:
			print(
				f"  {kind:16} n={len(values):6,}  p50 {common.ms(common.percentile(values, 50)):>9}  "
				f"p90 {common.ms(common.percentile(values, 90)):>9}  p99 {common.ms(common.percentile(values, 99)):>9}  "
				f"max {common.ms(max(values)):>9}"
			)
	print(
		f"  {'LIST (all)':16} n={len(listing):6,}  p50 {common.ms(common.percentile(listing, 50)):>9}  "
		f"p90 {common.ms(common.percentile(listing, 90)):>9}  p99 {common.ms(common.percentile(listing, 99)):>9}"
	)
	return (
		(common.percentile(listing, 50), common.percentile(listing, 99)),
		(common.percentile(baseline, 50), common.percentile(baseline, 99)),
	)


def main() -> None:
	parser = argparse.ArgumentParser(
		description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
	)
	parser.add_argument(
		"--runs", type=int, default=1_000_000, help="runs in the data set (default 1,000,000)"
	)
	parser.add_argument("--clients", type=int, default=50, help="simulated users (default 50)")
	parser.add_argument("--client-procs", type=int, default=2, help="processes the users run in (default 2)")
	parser.add_argument("--servers", type=int, default=2, help="Daphne processes (default 2)")
	parser.add_argument("--duration", type=float, default=60.0, help="measured seconds (default 60)")
	parser.add_argument("--warmup", type=float, default=10.0, help="seconds before measuring (default 10)")
	parser.add_argument("--think", type=float, default=1.0, help="mean think time of a user, s (default 1.0)")
	parser.add_argument("--reload", action="store_true", help="load the data again even if cached")
	parser.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE of each list query")
	parser.add_argument(
		"--index", action="append", default=[], help="CREATE INDEX ... to run before measuring"
	)
	parser.add_argument("--profile-only", action="store_true", help="stop after the in-process profile")
	parser.add_argument(
		"--keep-logs", action="store_true", help="keep the server logs (their folder is printed)"
	)
	args = parser.parse_args()

	common.install_signal_handlers()
	os.environ.setdefault("BENCH_REDIS_DB", "7")
	env = common.configure("list")
	# The API's rate limits would refuse 50 busy users of one tenant; they still run (and cost
	# what they cost) with limits nobody reaches.
	os.environ["API_RATE_PER_TOKEN"] = "10000000/minute"  # noqa: S105 - a rate, not a secret
	os.environ["API_RATE_PER_TENANT"] = "10000000/minute"
	tenants = ensure_dataset(env, args.runs, reload=args.reload)
	common.redis_client().flushdb()
	if args.index:
		from django.db import connection

		with connection.cursor() as cursor:
			for statement in args.index:
				cursor.execute(statement)
			cursor.execute("ANALYZE workflows_run")
	print(f"indexes tried besides the migrations': {extra_indexes() or 'none'}")
	issued = issue_tokens(tenants, args.clients)
	profile(issued, explain=args.explain)
	if args.profile_only:
		common.cleanup_workdir(env)
		return
	from django.db import connections

	connections.close_all()
	busy = [p for p in range(BASE_PORT, BASE_PORT + args.servers) if not port_free(p)]
	if busy:
		raise SystemExit(f"ports {busy} are in use: is another run of this benchmark going on?")
	print(
		f"api_runs_list: {args.runs:,} runs, {args.clients} users ({args.client_procs} processes, think "
		f"{args.think} s), {args.servers} daphne processes, {args.duration:.0f} s after {args.warmup:.0f} s "
		f"warm-up; {os.cpu_count()} cores, load average {common.load_average()}"
	)
	with Servers(env, args.servers) as servers:
		users = [(raw, data, servers.ports[i % len(servers.ports)]) for i, (raw, data) in enumerate(issued)]
		groups = [users[a:b] for a, b in common.split(len(users), args.client_procs)]
		# CPU of the servers and of PostgreSQL over the whole load (warm-up included): robust to
		# the other load on the machine, which wall-clock latencies are not.
		with common.CpuMeter({"servers": servers.pids()}) as meter:
			results = common.parallel_clients(
				client_process,
				[(group, args.warmup, args.duration, args.think, seed) for seed, group in enumerate(groups)],
			)
	samples = [s for part in results for s in part]
	(list_p50, list_p99), (base_p50, base_p99) = report(samples, args.duration)
	total = len(samples) * (args.warmup + args.duration) / args.duration  # requests incl. warm-up, estimated
	print(
		f"  CPU per request (list and baseline mixed, {BASELINE_SHARE:.0%} baseline): servers "
		f"{common.ms(meter.used['servers'] / total)}, PostgreSQL {common.ms(meter.used['postgres'] / total)}"
	)
	if not args.keep_logs:
		common.cleanup_workdir(env)
	else:
		print(f"server logs in {env.workdir}")
	failed = sum(1 for *_, status in samples if status != 200)
	verdict = "MET" if list_p99 <= TARGET_P99 and not failed else "MISSED"
	print(
		f"runs list ({args.runs:,} runs, {args.clients} users): p50 {common.ms(list_p50)}, p99 {common.ms(list_p99)}; "
		f"baseline GET /api/v1/me/ p50 {common.ms(base_p50)}, p99 {common.ms(base_p99)}; "
		f"ratio p50 {list_p50 / base_p50:.1f}x, p99 {list_p99 / base_p99:.1f}x "
		f"{f'; {failed} requests failed' if failed else ''} (target p99 <= 50 ms: {verdict})"
	)


if __name__ == "__main__":
	main()
