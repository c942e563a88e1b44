"""Step completion -> WebSocket client: latency with 500 connected clients and real workers.

1. Fixtures through the services: ``--tenants`` tenants (default 5), each with a workflow
   ``start -> nap (wait 2 s) -> s1 .. sN (noop) -> end`` (``--steps``, default 5; the wait gives
   the clients that follow one run the time to connect before its steps complete).
2. Processes: one Celery worker (queues ``steps`` and ``engine``, prefork pool of 2) executes
   the runs; ``--servers`` Daphne processes (default 2) serve the WebSockets; ``--client-procs``
   processes (default 2) hold the clients, using the ``websockets`` library.
3. Clients (``--clients``, default 500, each with its own API token, spread over the servers):
   ``--run-watchers`` of them (default 100) follow one run of their tenant at a time
   (``/ws/runs/<id>/``, as a run's page does), taking the next run as soon as theirs ends,
   ``--watch-per-run`` (default 10) on each run; the others follow their tenant's stream
   (``/ws/tenant/``, as the dashboard does), spread evenly over the tenants. So every event reaches every tenant client of its
   tenant and the watchers of its run.
4. Load: runs started at ``--rate`` per second (default 0.5, round-robin over the tenants) for
   ``--duration`` seconds (default 60), through ``run_start`` in this process. A run makes 18
   events (8 of them ``step.succeeded``), each sent to the 80 tenant clients of its tenant and
   its 10 watchers: about 800 messages a second at the default rate, which a 2-core machine
   shared with other work still delivers; at 2 runs/s it fell behind without bound (latencies of
   seconds, growing through the run).
5. Measure: every ``step.succeeded`` event a client receives live (after ``caught_up`` for a run
   watcher), from the event's ``RunEvent.created_at`` (stamped by the worker when the step's
   completion is recorded, before its transaction commits) to the client's clock when the message
   arrived: commit, the worker's publish, the channel layer, the consumer, Daphne and the socket.
   All processes share this machine's clock.
6. Baseline, at the same time and to the same tenant clients: this process sends a probe event
   with ``channel_layer.group_send`` to each tenant's group every ``--probe-interval`` seconds
   (default 1: 400 messages a second to the tenant clients); its latency, from the send to the
   client, is the channel layer, the consumer, Daphne and the socket only. The ratio isolates
   what the engine's path adds (the rest of the transition, the commit, the publish).

Target: p99 <= 100 ms. The last line prints p50/p99 of the step events and of the baseline, and
their ratio.

    uv run python bench/ws_latency.py [--clients 500] [--run-watchers 100] [--rate 0.5] [--duration 60]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402
from bench.api_runs_list import Servers, port_free  # noqa: E402

TARGET_P99 = 0.100
BASE_PORT = 8730
MEASURED = "step.succeeded"
PROBE = "bench.probe"
RUN_QUEUE = "bench:ws:runs"
READY_KEY = "bench:ws:connected"
STOP_KEY = "bench:ws:stop_at"


@dataclass(frozen=True)
class Client:
	"""One WebSocket client of ``tenant``: its tenant stream, or (``watcher``) one of its runs at a time."""

	token: str
	port: int
	tenant: str
	watcher: bool
	batch: bool = True


# --- clients (their own processes) --------------------------------------------------------------------


@dataclass
class Received:
	"""What one client process received: step events (run, seq, arrival, kind) and probe latencies."""

	steps: list[tuple[str, int, float, str]]
	probes: list[float]
	failures: list[str]


class Deadline:
	"""When the clients stop: set by the benchmark in Redis (``STOP_KEY``) once its runs are done."""

	def __init__(self, latest: float) -> None:
		self.at = latest

	async def follow(self, conn: Any) -> None:
		"""Poll the stop time until it has passed."""
		while time.time() < self.at:
			value = await conn.get(STOP_KEY)
			if value is not None:
				self.at = float(value)
			await asyncio.sleep(0.5)


def client_process(clients: list[Client], redis_url: str, latest: float) -> dict[str, Any]:
	"""Connect every tenant client, then the run watchers; receive until told to stop.

	Returns plain data (a dict): the parent cannot unpickle this script's classes made in a child.
	The garbage collector is off in these measuring processes (as ``timeit`` turns it off): its
	full passes over 250 connections and tens of thousands of recorded arrivals would stop
	a client for tens of milliseconds and be counted as the servers' latency.
	"""
	gc.disable()
	received = asyncio.run(_clients(clients, redis_url, Deadline(latest)))
	return {"steps": received.steps, "probes": received.probes, "failures": received.failures}


async def _clients(clients: list[Client], redis_url: str, deadline: Deadline) -> Received:
	import redis.asyncio as aioredis

	received = Received(steps=[], probes=[], failures=[])
	conn = aioredis.Redis.from_url(redis_url)
	follower = asyncio.create_task(deadline.follow(conn))
	tenant_clients = [c for c in clients if not c.watcher]
	ready = asyncio.Event()
	connected = 0

	async def counted() -> None:
		nonlocal connected
		connected += 1
		if connected == len(tenant_clients):
			ready.set()

	tasks = [asyncio.create_task(_tenant_client(c, deadline, received, counted)) for c in tenant_clients]
	if tenant_clients:
		await asyncio.wait_for(ready.wait(), timeout=300)
	await conn.incrby(READY_KEY, len(tenant_clients))
	tasks += [
		asyncio.create_task(_run_watcher(c, redis_url, deadline, received)) for c in clients if c.watcher
	]
	await asyncio.gather(*tasks)
	await follower
	await conn.aclose()
	return received


def _headers(client: Client) -> dict[str, Any]:
	return {
		"additional_headers": {"Authorization": f"Bearer {client.token}"},
		"origin": f"http://127.0.0.1:{client.port}",
		"open_timeout": 120,
		"max_size": 2**24,
	}


async def _tenant_client(client: Client, deadline: Deadline, received: Received, counted: Any) -> None:
	import websockets

	# Spread the connects a little: 400 handshakes at once only measure the accept queue.
	await asyncio.sleep(random.random() * 5)
	try:
		query = "?batch=1" if client.batch else ""
		async with websockets.connect(
			f"ws://127.0.0.1:{client.port}/ws/tenant/{query}", **_headers(client)
		) as ws:
			await counted()
			while time.time() < deadline.at:
				try:
					raw = await asyncio.wait_for(ws.recv(), timeout=1)
				except TimeoutError:
					continue
				arrived = time.time()
				for event in _events(json.loads(raw)):
					if event["type"] == PROBE:
						received.probes.append(arrived - event["data"]["sent"])
					elif event["type"] == MEASURED:
						received.steps.append((event["run"], event["seq"], arrived, "tenant"))
	except Exception as exc:  # noqa: BLE001 - reported with the figures
		received.failures.append(f"tenant client: {exc!r}")
		await counted()


def _events(message: dict[str, Any]) -> list[dict[str, Any]]:
	"""The run events in a message: one (``event``) or a transition's (``events``, batch mode)."""
	if message.get("type") == "events":
		return message["events"]
	return [message["event"]] if message.get("type") == "event" else []


async def _run_watcher(client: Client, redis_url: str, deadline: Deadline, received: Received) -> None:
	import redis.asyncio as aioredis
	import websockets

	conn = aioredis.Redis.from_url(redis_url)
	try:
		while time.time() < deadline.at:
			got = await conn.blpop([f"{RUN_QUEUE}:{client.tenant}"], timeout=1)
			if got is None:
				continue
			value: Any = got[1]
			run_id = value.decode() if isinstance(value, bytes) else str(value)
			try:
				async with websockets.connect(
					f"ws://127.0.0.1:{client.port}/ws/runs/{run_id}/?after=0{'&batch=1' if client.batch else ''}",
					**_headers(client),
				) as ws:
					live = False
					while time.time() < deadline.at:
						raw = await asyncio.wait_for(ws.recv(), timeout=60)
						arrived = time.time()
						message = json.loads(raw)
						if message["type"] == "caught_up":
							live = True
							if message["status"] in ("succeeded", "failed", "cancelled"):
								break
							continue
						events = _events(message)
						for event in events:
							if live and event["type"] == MEASURED:
								received.steps.append((event["run"], event["seq"], arrived, "run"))
						if any(e["type"] in ("run.succeeded", "run.failed", "run.cancelled") for e in events):
							break
			except Exception as exc:  # noqa: BLE001 - reported with the figures
				received.failures.append(f"run watcher: {exc!r}")
	finally:
		await conn.aclose()


# --- this process: runs and probes ------------------------------------------------------------------


def start_runs(
	workflows: list[Any], owners: list[Any], rate: float, duration: float, watch: int
) -> list[Any]:
	"""Start runs at ``rate`` per second for ``duration`` seconds; hand each to ``watch`` watchers."""
	from workflows.services.runs import run_start

	conn = common.redis_client()
	started = []
	began = time.monotonic()
	for i in range(int(rate * duration)):
		delay = began + i / rate - time.monotonic()
		if delay > 0:
			time.sleep(delay)
		k = i % len(workflows)
		run = run_start(actor=owners[k], workflow=workflows[k])
		started.append(run.pk)
		if watch:
			conn.rpush(f"{RUN_QUEUE}:{run.tenant_id}", *([str(run.pk)] * watch))
	return started


def send_probes(tenant_ids: list[str], interval: float, stop: threading.Event) -> int:
	"""Send a probe to each tenant's group every ``interval`` seconds until ``stop``; how many."""
	from channels.layers import get_channel_layer

	from workflows.consumers import tenant_group

	async def loop() -> int:
		layer = get_channel_layer()
		assert layer is not None
		runs = {t: str(uuid.uuid4()) for t in tenant_ids}
		seq = 0
		while not stop.is_set():
			seq += 1
			for tenant_id in tenant_ids:
				event = {
					"run": runs[tenant_id],
					"seq": seq,
					"type": PROBE,
					"step": "",
					"data": {"sent": time.time()},
				}
				await layer.group_send(tenant_group(tenant_id), {"type": "tenant.events", "events": [event]})
			await asyncio.sleep(interval)
		return seq * len(tenant_ids)

	return asyncio.run(loop())


def latencies(steps: list[tuple[str, int, float, str]], runs: set[str]) -> dict[str, list[float]]:
	"""Arrival minus the RunEvent's creation, per kind of client, for the measured runs' step events."""
	from workflows.models import RunEvent

	created: dict[tuple[str, int], float] = {}
	ids = sorted(runs)
	for first in range(0, len(ids), 500):
		for run_id, seq, at in (
			RunEvent.objects._unfiltered()
			.filter(run_id__in=ids[first : first + 500], type=MEASURED)
			.values_list("run_id", "seq", "created_at")
		):
			created[(str(run_id), seq)] = common.ts(at)
	out: dict[str, list[float]] = {"tenant": [], "run": []}
	for run_id, seq, arrived, kind in steps:
		at = created.get((run_id, seq))
		if at is not None:
			out[kind].append(arrived - at)
	return out


def line(label: str, values: list[float]) -> str:
	"""A row of percentiles."""
	if not values:
		return f"  {label}: no samples"
	return (
		f"  {label}: n={len(values):,}  p50 {common.ms(common.percentile(values, 50))}  "
		f"p90 {common.ms(common.percentile(values, 90))}  p99 {common.ms(common.percentile(values, 99))}  "
		f"max {common.ms(max(values))}"
	)


def main() -> None:
	parser = argparse.ArgumentParser(
		description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
	)
	parser.add_argument("--clients", type=int, default=500, help="WebSocket clients (default 500)")
	parser.add_argument(
		"--run-watchers", type=int, default=100, help="of them, following one run (default 100)"
	)
	parser.add_argument("--watch-per-run", type=int, default=10, help="watchers per run (default 10)")
	parser.add_argument("--tenants", type=int, default=5, help="tenants (default 5)")
	parser.add_argument("--steps", type=int, default=5, help="noop steps per run (default 5)")
	parser.add_argument("--rate", type=float, default=0.5, help="runs started per second (default 0.5)")
	parser.add_argument("--duration", type=float, default=60.0, help="seconds of starting runs (default 60)")
	parser.add_argument(
		"--probe-interval", type=float, default=1.0, help="seconds between probes (default 1)"
	)
	parser.add_argument("--servers", type=int, default=2, help="Daphne processes (default 2)")
	parser.add_argument("--client-procs", type=int, default=2, help="client processes (default 2)")
	parser.add_argument(
		"--frames",
		choices=("batch", "event"),
		default="batch",
		help="batch: the clients ask for ?batch=1, a transition's events in one frame, as the "
		"dashboard does (default); event: one frame per event",
	)
	parser.add_argument("--keep-logs", action="store_true", help="keep the logs (their folder is printed)")
	args = parser.parse_args()

	common.install_signal_handlers()
	os.environ.setdefault("BENCH_REDIS_DB", "8")
	env = common.configure("ws")
	os.environ["API_RATE_PER_TOKEN"] = "10000000/minute"  # noqa: S105 - a rate, not a secret
	os.environ["API_RATE_PER_TENANT"] = "10000000/minute"
	common.prepare(env)
	from workflows.context import tenant_scope
	from workflows.services.tokens import api_token_create

	nap = {"id": "nap", "type": "wait", "config": {"duration": "PT2S"}}
	definition = common.linear_definition(
		[nap, *(common.task_node(f"s{i}") for i in range(1, args.steps + 1))]
	)
	tenants, owners, workflows = [], [], []
	for i in range(args.tenants):
		tenant, owner = common.make_tenant(f"ws{i}")
		tenants.append(tenant)
		owners.append(owner)
		workflows.append(common.make_workflow(tenant, owner, f"Watched {i}", definition))
	clients: list[Client] = []
	for i in range(args.clients):
		k = i % len(tenants)
		with tenant_scope(tenants[k]):
			raw = api_token_create(actor=owners[k], tenant=tenants[k], name=f"ws-{i}").raw
		clients.append(
			Client(
				raw,
				BASE_PORT + i % args.servers,
				str(tenants[k].pk),
				i < args.run_watchers,
				batch=args.frames == "batch",
			)
		)
	busy = [p for p in range(BASE_PORT, BASE_PORT + args.servers) if not port_free(p)]
	if busy:
		raise SystemExit(f"ports {busy} are in use: is another run of this benchmark going on?")
	conn = common.redis_client()
	spec = common.WorkerSpec("steps", ("steps", "engine"), concurrency=2)
	print(
		f"ws_latency: {args.clients} clients ({args.clients - args.run_watchers} tenant streams over "
		f"{args.tenants} tenants, {args.run_watchers} run watchers x{args.watch_per_run} per run), "
		f"{args.rate}/s runs of {args.steps} noop steps for {args.duration:.0f} s; worker {spec.describe()}; "
		f"{args.servers} daphne processes; frames: {args.frames}; {os.cpu_count()} cores, "
		f"load average {common.load_average()}"
	)
	with common.Cluster(env, [spec]) as cluster, Servers(env, args.servers, base_port=BASE_PORT):
		setup_allowance = 120.0
		# The clients stop when told (STOP_KEY), at the latest this long from now.
		latest = time.time() + setup_allowance + args.duration + 300
		groups = [clients[a :: args.client_procs] for a in range(args.client_procs)]
		pool_result: dict[str, Any] = {}

		def clients_thread() -> None:
			pool_result["received"] = common.parallel_clients(
				client_process, [(group, env.redis_url, latest) for group in groups]
			)

		holder = threading.Thread(target=clients_thread, name="clients")
		holder.start()
		tenant_clients = args.clients - args.run_watchers
		common.wait_until(
			lambda: int(conn.get(READY_KEY) or 0) >= tenant_clients,
			timeout=setup_allowance,
			cluster=cluster,
			what=f"{tenant_clients} tenant clients to connect",
		)
		print(f"  {tenant_clients} tenant clients connected; load average {common.load_average()}")
		stop = threading.Event()
		probes: dict[str, int] = {}
		prober = threading.Thread(
			target=lambda: probes.setdefault(
				"sent", send_probes([str(t.pk) for t in tenants], args.probe_interval, stop)
			),
			name="probes",
		)
		prober.start()
		runs = start_runs(workflows, owners, args.rate, args.duration, args.watch_per_run)
		counts = common.wait_runs_finished(len(runs), timeout=120, cluster=cluster)
		time.sleep(2)  # the last events' messages are on their way
		stop.set()
		prober.join()
		conn.set(STOP_KEY, time.time())
		holder.join()
	received: list[dict[str, Any]] = pool_result["received"]
	steps = [s for part in received for s in part["steps"]]
	probe_latencies = [p for part in received for p in part["probes"]]
	failures = [f for part in received for f in part["failures"]]
	by_kind = latencies(steps, {str(r) for r in runs})
	every = by_kind["tenant"] + by_kind["run"]
	print(
		f"  runs: {counts}; messages measured: {len(steps):,} step events, {len(probe_latencies):,} probes "
		f"({probes.get('sent', 0):,} probes sent); client failures: {len(failures)}"
	)
	for failure in failures[:5]:
		print(f"    {failure}")
	print(line("step.succeeded -> tenant stream client", by_kind["tenant"]))
	print(line("step.succeeded -> run stream client   ", by_kind["run"]))
	print(line("step.succeeded -> any client (MEASURED)", every))
	print(line("baseline: group_send -> tenant client  ", probe_latencies))
	if not args.keep_logs:
		common.cleanup_workdir(env)
	else:
		print(f"logs in {env.workdir}")
	p50, p99 = common.percentile(every, 50), common.percentile(every, 99)
	b50, b99 = common.percentile(probe_latencies, 50), common.percentile(probe_latencies, 99)
	verdict = "MET" if p99 <= TARGET_P99 and not failures else "MISSED"
	print(
		f"step completion -> WebSocket ({args.clients} clients): p50 {common.ms(p50)}, p99 {common.ms(p99)}; "
		f"baseline group_send -> client p50 {common.ms(b50)}, p99 {common.ms(b99)}; ratio p50 {p50 / b50:.1f}x, "
		f"p99 {p99 / b99:.1f}x (target p99 <= 100 ms: {verdict})"
	)


if __name__ == "__main__":
	main()
