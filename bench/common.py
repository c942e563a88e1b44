"""Shared code of the benchmarks: environment and database set-up, worker processes, fixtures, figures.

A benchmark script calls, in order:

1. :func:`configure` - sets DATABASE_URL / REDIS_URL / SECRET_KEY for a database and a Redis
   db of its own (``BENCH_POSTGRES`` and ``BENCH_REDIS`` override the servers);
2. :func:`prepare` - drops and recreates the database, flushes the Redis db, sets Django up and
   migrates;
3. :class:`Cluster` - starts Celery workers (and beat) as separate processes, waits until
   every queue answers a ping, and stops them cleanly on exit, Ctrl-C or an exception.

Fixtures go through the real services (``tenant_create``, ``workflow_create``,
``workflow_publish``); runs are started with ``run_start``.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
	from workflows.models import Tenant, User, Workflow

ROOT = Path(__file__).resolve().parent.parent
# A distinct Redis db per benchmark, so two benchmarks never read each other's queues.
REDIS_DBS = {
	"start_latency": 10,
	"overhead": 11,
	"throughput": 12,
	"burst_wait": 13,
	"parked_events": 14,
	"fib40": 15,
}
_SECRET_KEY = "bench-only-secret-key-not-for-production-0123456789abcdefghijklmnop"  # noqa: S105 - throwaway


# --- environment and database ---------------------------------------------------------------


@dataclass(frozen=True)
class BenchEnv:
	"""Where one benchmark keeps its data."""

	name: str
	database: str
	database_url: str
	postgres_url: str
	redis_url: str
	workdir: Path


def configure(name: str) -> BenchEnv:
	"""Point this process (and the workers it starts) at the benchmark's own database and Redis db.

	The database is always ``apg_bench_<name>`` (it is dropped and recreated, so no other
	database can be hit); ``BENCH_POSTGRES`` (default ``postgres://postgres@127.0.0.1:5432``) and
	``BENCH_REDIS`` (default ``redis://127.0.0.1:6379``) name the servers, ``BENCH_REDIS_DB``
	overrides the Redis db number and ``BENCH_LOG_LEVEL`` the workers' log level (WARNING).
	"""
	postgres = os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432").rstrip("/")
	redis_base = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379").rstrip("/")
	redis_db = int(os.environ.get("BENCH_REDIS_DB", REDIS_DBS.get(name, 9)))
	database = f"apg_bench_{name}"
	env = BenchEnv(
		name=name,
		database=database,
		database_url=f"{postgres}/{database}",
		postgres_url=f"{postgres}/postgres",
		redis_url=f"{redis_base}/{redis_db}",
		workdir=Path(tempfile.mkdtemp(prefix=f"apg-bench-{name}-")),
	)
	os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
	os.environ["DATABASE_URL"] = env.database_url
	os.environ["REDIS_URL"] = env.redis_url
	os.environ.setdefault("SECRET_KEY", _SECRET_KEY)
	os.environ["LOG_LEVEL"] = os.environ.get("BENCH_LOG_LEVEL", "WARNING")
	os.environ["EMBEDDED_WORKER"] = "false"
	os.environ["DEBUG"] = "false"
	# The workers import bench.baseline_tasks: make the project importable whatever the cwd.
	os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
	if str(ROOT) not in sys.path:
		sys.path.insert(0, str(ROOT))
	return env


def prepare(env: BenchEnv) -> None:
	"""Drop and recreate the database, flush the Redis db, set Django up and migrate."""
	import psycopg
	import redis
	from psycopg import sql

	name = sql.Identifier(env.database)
	with psycopg.connect(env.postgres_url, autocommit=True) as conn:
		conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
		conn.execute(sql.SQL("CREATE DATABASE {}").format(name))
	redis.Redis.from_url(env.redis_url).flushdb()
	setup_django()
	from django.core.management import call_command

	call_command("migrate", verbosity=0, interactive=False)


def setup_django() -> None:
	"""``django.setup()`` for this process (the environment must be configured first).

	Also imports ``config.celery``, as ``celery -A config`` does in the workers. Since commit
	5b66f78 ``config/__init__.py`` does it too; before that, the engine's ``shared_task`` sends from
	a process that had not imported it went through Celery's default app (``amqp://localhost``).
	"""
	import django

	django.setup()
	import config.celery  # noqa: F401


def install_signal_handlers() -> None:
	"""Turn SIGTERM into KeyboardInterrupt, so ``finally`` blocks stop the workers."""

	def interrupt(signum: int, frame: FrameType | None) -> None:
		raise KeyboardInterrupt(f"signal {signum}")

	signal.signal(signal.SIGTERM, interrupt)


# --- worker processes -----------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerSpec:
	"""One ``celery worker`` process: its queues, pool and concurrency."""

	name: str
	queues: tuple[str, ...]
	pool: str = "prefork"
	concurrency: int = 2
	prefetch_multiplier: int | None = None

	def describe(self) -> str:
		"""A short human description, e.g. ``w1: steps,engine prefork x2``."""
		return f"{self.name}: -Q {','.join(self.queues)} -P {self.pool} -c {self.concurrency}"


def worker_command(spec: WorkerSpec) -> list[str]:
	"""The command line of a worker started for a benchmark."""
	command = [
		sys.executable,
		"-m",
		"celery",
		"-A",
		"config",
		"worker",
		"-n",
		f"{spec.name}@%h",
		"-Q",
		",".join(spec.queues),
		"-P",
		spec.pool,
		"-c",
		str(spec.concurrency),
		"-I",
		"bench.baseline_tasks,bench.whatif",
		"-l",
		os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
		"--without-gossip",
		"--without-mingle",
		"--without-heartbeat",
	]
	if spec.prefetch_multiplier is not None:
		command += ["--prefetch-multiplier", str(spec.prefetch_multiplier)]
	return command


class Cluster:
	"""Celery workers (and optionally beat) as subprocesses of the benchmark; a context manager.

	Each process gets its own session, so a Ctrl-C in the terminal reaches only the benchmark,
	which then stops them: SIGTERM (warm shutdown), and SIGKILL of the process group after a
	grace period. Output goes to log files in the benchmark's work directory.
	"""

	def __init__(self, env: BenchEnv, workers: Sequence[WorkerSpec], *, beat: bool = False) -> None:
		self.env = env
		self.specs = list(workers)
		self.beat = beat
		self.procs: dict[str, subprocess.Popen[bytes]] = {}
		self._logs: list[Any] = []

	def __enter__(self) -> Cluster:
		try:
			self.start()
		except BaseException:
			self.stop()
			raise
		return self

	def __exit__(self, *exc: object) -> None:
		self.stop()

	def _spawn(self, name: str, command: list[str]) -> None:
		log = (self.env.workdir / f"{name}.log").open("wb")
		self._logs.append(log)
		self.procs[name] = subprocess.Popen(
			command,
			cwd=ROOT,
			env=os.environ.copy(),
			stdin=subprocess.DEVNULL,
			stdout=log,
			stderr=subprocess.STDOUT,
			start_new_session=True,
		)

	def start(self, *, timeout: float = 90.0) -> None:
		"""Start every process and wait until each queue has answered a ping."""
		for spec in self.specs:
			self._spawn(spec.name, worker_command(spec))
		if self.beat:
			self._spawn(
				"beat",
				[
					sys.executable,
					"-m",
					"celery",
					"-A",
					"config",
					"beat",
					"-l",
					os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
					"-s",
					str(self.env.workdir / "celerybeat-schedule"),
				],
			)
		self.wait_ready(timeout=timeout)

	def wait_ready(self, *, timeout: float) -> None:
		"""Send ``bench.ping`` to every queue and wait for each answer."""
		from bench.baseline_tasks import PING_KEY, ping

		token = uuid.uuid4().hex
		queues = {q for spec in self.specs for q in spec.queues}
		for queue in queues:
			ping.apply_async(args=(token, queue), queue=queue)
		conn = redis_client()
		deadline = time.monotonic() + timeout
		missing = set(queues)
		while missing:
			self.check_alive()
			if time.monotonic() > deadline:
				raise RuntimeError(
					f"workers not ready after {timeout:.0f} s (queues {sorted(missing)}); {self.logs_hint()}"
				)
			got = conn.blpop([PING_KEY.format(token=token)], timeout=1)
			if got is not None:
				missing.discard(got[1].decode())
		if self.beat:
			time.sleep(0.5)
			self.check_alive()

	def check_alive(self) -> None:
		"""Raise if a process of the cluster has exited."""
		for name, proc in self.procs.items():
			if proc.poll() is not None:
				raise RuntimeError(f"{name} exited with code {proc.returncode}; {self.logs_hint()}")

	def logs_hint(self) -> str:
		"""Where the processes' logs are."""
		return f"see the logs in {self.env.workdir}"

	def pids(self, *, beat: bool = True) -> dict[str, int]:
		"""Top-level pid of each process (workers by name, and ``beat``)."""
		return {n: p.pid for n, p in self.procs.items() if beat or n != "beat"}

	def stop(self, *, grace: float = 20.0) -> None:
		"""Warm shutdown (SIGTERM), then SIGKILL of each process group that outlives ``grace``."""
		for proc in self.procs.values():
			if proc.poll() is None:
				with contextlib.suppress(ProcessLookupError):
					proc.send_signal(signal.SIGTERM)
		deadline = time.monotonic() + grace
		for proc in self.procs.values():
			try:
				proc.wait(timeout=max(0.1, deadline - time.monotonic()))
			except subprocess.TimeoutExpired:
				with contextlib.suppress(ProcessLookupError):
					os.killpg(proc.pid, signal.SIGKILL)
				proc.wait(timeout=10)
			# Pool children left behind by a killed parent share its process group.
			with contextlib.suppress(ProcessLookupError, PermissionError):
				os.killpg(proc.pid, signal.SIGKILL)
		self.procs.clear()
		for log in self._logs:
			log.close()
		self._logs.clear()


def redis_client() -> Any:
	"""A Redis client on the benchmark's db."""
	import redis
	from django.conf import settings

	return redis.Redis.from_url(settings.REDIS_URL)


def cleanup_workdir(env: BenchEnv) -> None:
	"""Remove the logs of a benchmark that succeeded."""
	shutil.rmtree(env.workdir, ignore_errors=True)


# --- fixtures through the real services -------------------------------------------------------


def make_tenant(slug: str = "bench") -> tuple[Tenant, User]:
	"""A tenant and its owner, created through ``tenant_create``."""
	from workflows.models import User
	from workflows.services.tenancy import tenant_create

	user = User.objects.create_user(username=f"{slug}-owner", email=f"{slug}@example.com", password=None)
	tenant = tenant_create(actor=user, slug=slug, name=f"Benchmark {slug}")
	return tenant, user


def make_workflow(tenant: Tenant, owner: User, name: str, definition: dict[str, Any]) -> Workflow:
	"""A workflow created and published through ``workflow_create`` and ``workflow_publish``."""
	from workflows.services.definitions import workflow_create, workflow_publish

	workflow = workflow_create(actor=owner, tenant=tenant, name=name, definition=definition)
	workflow_publish(actor=owner, workflow=workflow)
	return workflow


def task_node(node_id: str, connector: str = "noop", action: str = "noop", **config: Any) -> dict[str, Any]:
	"""A task node of a definition."""
	return {"id": node_id, "type": "task", "config": {"connector": connector, "action": action, **config}}


def linear_definition(middle: Sequence[dict[str, Any]]) -> dict[str, Any]:
	"""start -> each node of ``middle`` in order -> end."""
	nodes = [{"id": "start", "type": "start"}, *middle, {"id": "end", "type": "end"}]
	ids = [n["id"] for n in nodes]
	return {
		"schema_version": "1.0",
		"nodes": nodes,
		"edges": [{"source": a, "target": b} for a, b in zip(ids, ids[1:], strict=False)],
	}


def noop_chain(steps: int) -> dict[str, Any]:
	"""A linear workflow of ``steps`` noop tasks."""
	return linear_definition([task_node(f"s{i:02d}") for i in range(1, steps + 1)])


# --- runs ---------------------------------------------------------------------------------------


def ts(value: datetime | None) -> float:
	"""Seconds since the epoch of a stored timestamp (NaN for None)."""
	return value.timestamp() if value is not None else math.nan


def run_counts() -> dict[str, int]:
	"""Number of runs per status."""
	from django.db.models import Count

	from workflows.models import Run

	rows = Run.objects._unfiltered().values("status").annotate(n=Count("id"))
	return {row["status"]: row["n"] for row in rows}


def wait_until(
	condition: Callable[[], bool],
	*,
	timeout: float,
	interval: float = 0.25,
	cluster: Cluster | None = None,
	what: str = "condition",
) -> None:
	"""Poll ``condition`` until true; raise on timeout or when a worker died."""
	deadline = time.monotonic() + timeout
	while not condition():
		if cluster is not None:
			cluster.check_alive()
		if time.monotonic() > deadline:
			raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
		time.sleep(interval)


def wait_runs_finished(
	expected: int, *, timeout: float, cluster: Cluster | None = None, interval: float = 0.25
) -> dict[str, int]:
	"""Wait until ``expected`` runs are in a terminal status; returns the counts per status."""
	from workflows.engine.status import TERMINAL_RUN_STATUSES

	terminal = {s.value for s in TERMINAL_RUN_STATUSES}
	counts: dict[str, int] = {}

	def done() -> bool:
		nonlocal counts
		counts = run_counts()
		return sum(n for s, n in counts.items() if s in terminal) >= expected

	wait_until(done, timeout=timeout, interval=interval, cluster=cluster, what=f"{expected} runs to finish")
	return counts


def wait_run_finished(run_id: Any, *, timeout: float = 60.0, interval: float = 0.002) -> str:
	"""Wait for one run to reach a terminal status (short polls: for one-at-a-time benchmarks)."""
	from workflows.engine.status import TERMINAL_RUN_STATUSES
	from workflows.models import Run

	terminal = {s.value for s in TERMINAL_RUN_STATUSES}
	deadline = time.monotonic() + timeout
	query = Run.objects._unfiltered().filter(pk=run_id).values_list("status", flat=True)
	while True:
		status = query.first()
		if status in terminal:
			return str(status)
		if time.monotonic() > deadline:
			raise TimeoutError(f"run {run_id} not finished after {timeout:.0f} s (status {status})")
		time.sleep(interval)


def check_exactly_once(expected_runs: int, nodes: Iterable[str]) -> list[str]:
	"""Problems found: runs not succeeded, and nodes without exactly one (succeeded) attempt per run.

	A run may hold one StepRun row per node activation and attempt; for a run without retries
	every listed node must have exactly one row, and it must have succeeded.
	"""
	from django.db.models import Count, Q

	from workflows.models import Run, StepRun

	problems: list[str] = []
	runs = Run.objects._unfiltered()
	total = runs.count()
	if total != expected_runs:
		problems.append(f"{total} runs in the database, expected {expected_runs}")
	not_ok = runs.exclude(status="succeeded").count()
	if not_ok:
		problems.append(f"{not_ok} runs did not succeed")
	for node in nodes:
		stats = (
			StepRun.objects._unfiltered()
			.filter(node_id=node)
			.values("run_id")
			.annotate(rows=Count("id"), ok=Count("id", filter=Q(status="succeeded")))
		)
		bad = stats.exclude(rows=1, ok=1).count()
		seen = stats.count()
		if seen != expected_runs:
			problems.append(f"node {node}: {seen} runs have a step row, expected {expected_runs}")
		if bad:
			problems.append(
				f"node {node}: {bad} runs lack exactly one succeeded attempt (lost or duplicated)"
			)
	return problems


# --- parallel client processes -----------------------------------------------------------------


def _client_entry(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
	setup_django()
	from django.db import connections

	try:
		return fn(*args)
	finally:
		connections.close_all()


def parallel_clients(fn: Callable[..., Any], arg_lists: Sequence[tuple[Any, ...]]) -> list[Any]:
	"""Call ``fn(*args)`` in one fresh client process per item (spawned, Django set up); return the results.

	``fn`` must be a module-level function of the benchmark script (it is pickled by name).
	"""
	if len(arg_lists) == 1:
		return [fn(*arg_lists[0])]
	ctx = multiprocessing.get_context("spawn")
	with ctx.Pool(len(arg_lists)) as pool:
		pending = [pool.apply_async(_client_entry, (fn, args)) for args in arg_lists]
		return [p.get() for p in pending]


def split(total: int, parts: int) -> list[tuple[int, int]]:
	"""``parts`` half-open ranges covering ``range(total)`` as evenly as possible."""
	parts = max(1, min(parts, total)) if total else 1
	bounds = [total * i // parts for i in range(parts + 1)]
	return list(zip(bounds, bounds[1:], strict=False))


# --- figures ------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
	"""The ``q``-th percentile (0-100) with linear interpolation between closest ranks."""
	if not values:
		return math.nan
	ordered = sorted(values)
	if len(ordered) == 1:
		return ordered[0]
	rank = (len(ordered) - 1) * q / 100
	low = math.floor(rank)
	high = min(low + 1, len(ordered) - 1)
	return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
	"""The 50th percentile."""
	return percentile(values, 50)


def ms(seconds: float) -> str:
	"""Seconds as milliseconds for printing."""
	return f"{seconds * 1000:.1f} ms"


def mib(nbytes: float) -> str:
	"""Bytes as MiB for printing."""
	return f"{nbytes / 2**20:.0f} MiB"


def load_average() -> str:
	"""The 1/5/15-minute load averages: other processes on the machine compete for its cores."""
	return "/".join(f"{x:.2f}" for x in os.getloadavg())


def common_arguments(parser: argparse.ArgumentParser) -> None:
	"""Options every benchmark takes."""
	parser.add_argument(
		"--keep-logs", action="store_true", help="keep the worker logs (their folder is printed)"
	)
	parser.add_argument(
		"--whatif",
		default=os.environ.get("BENCH_WHATIF", ""),
		help="comma-separated patches modelling proposed engine fixes (keep-db, lock-run-only, publish-loop); see bench/whatif.py",
	)


def apply_whatif(args: argparse.Namespace) -> None:
	"""Turn on the ``--whatif`` patches in this process and (through the environment) in the workers."""
	os.environ["BENCH_WHATIF"] = args.whatif
	if args.whatif:
		import bench.whatif  # noqa: F401 - patches on import

		print(f"WHAT-IF: measuring with the patches {args.whatif} (bench/whatif.py), not the engine as it is")


def whatif_note() -> str:
	"""A suffix for the last line when what-if patches are active."""
	active = os.environ.get("BENCH_WHATIF", "")
	return f" [what-if: {active}]" if active else ""


# --- memory of process trees (no psutil) ---------------------------------------------------------

_PAGE = os.sysconf("SC_PAGE_SIZE")


def _children_map() -> dict[int, list[int]]:
	kids: dict[int, list[int]] = defaultdict(list)
	for entry in os.listdir("/proc"):
		if not entry.isdigit():
			continue
		try:
			with open(f"/proc/{entry}/stat") as f:
				stat = f.read()
		except OSError:
			continue
		ppid = int(stat.rsplit(")", 1)[1].split()[1])
		kids[ppid].append(int(entry))
	return kids


def process_tree(pid: int, kids: dict[int, list[int]] | None = None) -> list[int]:
	"""``pid`` and all its descendants that still exist."""
	kids = _children_map() if kids is None else kids
	found, todo = [], [pid]
	while todo:
		current = todo.pop()
		found.append(current)
		todo.extend(kids.get(current, ()))
	return found


def rss(pid: int) -> int:
	"""Resident set size of one process in bytes (0 when it is gone)."""
	try:
		with open(f"/proc/{pid}/statm") as f:
			return int(f.read().split()[1]) * _PAGE
	except (OSError, IndexError, ValueError):
		return 0


def peak_rss(pid: int) -> int:
	"""Peak resident set size (VmHWM) of one process in bytes (0 when it is gone)."""
	try:
		with open(f"/proc/{pid}/status") as f:
			for line in f:
				if line.startswith("VmHWM:"):
					return int(line.split()[1]) * 1024
	except OSError:
		pass
	return 0


def tree_rss(pid: int, kids: dict[int, list[int]] | None = None) -> int:
	"""Summed RSS of a process tree in bytes."""
	return sum(rss(p) for p in process_tree(pid, kids))


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
	"""User + system CPU seconds one process has used (0 when it is gone)."""
	try:
		with open(f"/proc/{pid}/stat") as f:
			fields = f.read().rsplit(")", 1)[1].split()
	except OSError:
		return 0.0
	return (int(fields[11]) + int(fields[12])) / _TICKS


def run_seconds(pid: int) -> float:
	"""CPU seconds of a single-threaded process from the scheduler's nanosecond clock (0 when gone).

	Used for PostgreSQL backends: their tick-sampled user/system times stay near 0 for the
	short queries of the engine, while ``schedstat`` counts every nanosecond on a CPU.
	"""
	try:
		with open(f"/proc/{pid}/schedstat") as f:
			return int(f.read().split()[0]) / 1e9
	except (OSError, IndexError, ValueError):
		return 0.0


def postgres_backends() -> list[int]:
	"""Pids of the PostgreSQL backends of this benchmark's database, but this process's own (same host only)."""
	from django.db import connection

	with connection.cursor() as cursor:
		cursor.execute(
			"SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
		)
		return [row[0] for row in cursor.fetchall()]


@dataclass
class CpuMeter:
	"""CPU seconds used by process trees and by the database's PostgreSQL backends over a block.

	Robust to other load on the machine (unlike wall time): ``meter.used`` maps each group and
	``postgres`` (the backends of this database, but the measuring process's own) to the CPU
	seconds they used between ``__enter__`` and ``__exit__``.
	"""

	groups: dict[str, list[int]]
	used: dict[str, float] = field(default_factory=dict)
	_begin: dict[str, dict[int, float]] = field(default_factory=dict)

	def _snapshot(self) -> dict[str, dict[int, float]]:
		kids = _children_map()
		snap = {
			label: {p: cpu_seconds(p) for r in roots for p in process_tree(r, kids)}
			for label, roots in self.groups.items()
		}
		snap["postgres"] = {p: run_seconds(p) for p in postgres_backends()}
		return snap

	def __enter__(self) -> CpuMeter:
		self._begin = self._snapshot()
		return self

	def __exit__(self, *exc: object) -> None:
		end = self._snapshot()
		for label, pids in end.items():
			before = self._begin.get(label, {})
			self.used[label] = sum(value - before.get(pid, 0.0) for pid, value in pids.items())


@dataclass
class RssSampler:
	"""Samples the summed RSS of process trees on a thread; keeps the peak per group and in total.

	``groups`` maps a label to the root pids whose whole trees are counted (e.g. ``client``
	-> this process, ``workers`` -> the worker pids, ``beat`` -> beat). The parallel client
	processes of this benchmark are children of this process, so they count as ``client``.
	"""

	groups: dict[str, list[int]]
	interval: float = 0.25
	peak: dict[str, int] = field(default_factory=dict)
	peak_total: int = 0
	last: dict[str, int] = field(default_factory=dict)
	_stop: threading.Event = field(default_factory=threading.Event)
	_thread: threading.Thread | None = None

	def sample(self) -> dict[str, int]:
		"""Take one sample now (also updates the peaks)."""
		kids = _children_map()
		now: dict[str, int] = {}
		seen: set[int] = set()
		# Count each pid once even when trees nest (the client's tree holds the workers).
		for label in sorted(self.groups, key=lambda g: g == "client"):
			total = 0
			for root in self.groups[label]:
				for pid in process_tree(root, kids):
					if pid not in seen:
						seen.add(pid)
						total += rss(pid)
			now[label] = total
		for label, value in now.items():
			self.peak[label] = max(self.peak.get(label, 0), value)
		self.peak_total = max(self.peak_total, sum(now.values()))
		self.last = now
		return now

	def _loop(self) -> None:
		while not self._stop.wait(self.interval):
			self.sample()

	def __enter__(self) -> RssSampler:
		self.sample()
		self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)
		self._thread.start()
		return self

	def __exit__(self, *exc: object) -> None:
		self._stop.set()
		if self._thread is not None:
			self._thread.join()
		self.sample()


@contextlib.contextmanager
def timed(label: str, results: dict[str, float]) -> Iterator[None]:
	"""Store the wall time of the block in ``results[label]``."""
	started = time.perf_counter()
	try:
		yield
	finally:
		results[label] = time.perf_counter() - started
