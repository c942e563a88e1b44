"""Live events -> WebSocket clients: CPU time of the Daphne processes and Redis per message delivered.

Wall-clock latency on a shared machine measures the machine's load as much as the code; CPU time
per delivered event barely moves with it, so this is the figure to compare two versions of the
fan-out with (``bench/ws_latency.py`` measures the latency, on a quiet machine).

1. A Redis server of its own (``redis-server`` on a free port, no persistence), so its CPU time is
   this benchmark's only; ``--tenants`` tenants (default 5), each with ``--runs-per-tenant``
   waiting runs (default 2) started through the services.
2. ``--servers`` Daphne processes (default 2) and ``--clients`` WebSocket clients (default 500, in
   ``--client-procs`` processes, each with its own API token): ``--run-watchers`` (default 100) on
   ``/ws/runs/<id>/``, spread evenly over the runs, the others on ``/ws/tenant/``, spread evenly
   over the tenants - the shape of ``bench/ws_latency.py``.
3. This process publishes what a step completion publishes (``step.succeeded`` and the next
   ``step.scheduled``, through ``workflows.engine.effects.publish_events``, as a worker does):
   one batch per run first (warm-up, not measured), then ``--batches`` batches (default 200)
   round-robin over the runs at ``--rate`` batches a second (default 5: about 900 messages a
   second to the clients, as in ``bench/ws_latency.py``), and waits until every client has
   received every event.
4. Measured: the CPU time (user + system, from ``/proc/<pid>/stat``) of the Daphne processes and
   the Redis server over the measured batches, minus what they use idle (sampled for
   ``--idle`` seconds before), divided by the messages the clients received; and this process's
   CPU time per batch published (what a worker spends publishing a step's events).

    uv run python bench/ws_fanout_cpu.py [--clients 500] [--batches 200] [--rate 5] [--profile FILE]

``--profile FILE`` runs the first Daphne process under cProfile (its CPU figure is then inflated),
writes the statistics to FILE and prints its top functions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402
from bench.api_runs_list import port_free  # noqa: E402

BASE_PORT = 8790
RECEIVED_KEY = "bench:fanout:received"
READY_KEY = "bench:fanout:ready"
STOP_KEY = "bench:fanout:stop"
FAILED_KEY = "bench:fanout:failed"  # could not connect
DROPPED_KEY = "bench:fanout:dropped"  # connected, then closed by the server
TICKS = os.sysconf("SC_CLK_TCK")
# Daphne with cProfile switched on by SIGUSR1 and off (statistics written) by SIGUSR2: the
# measured phase only, not the start-up and the handshakes.
PROFILED = (
	"import cProfile, runpy, signal, sys\n"
	"profile, path = cProfile.Profile(), sys.argv.pop(1)\n"
	"signal.signal(signal.SIGUSR1, lambda *_: profile.enable())\n"
	"signal.signal(signal.SIGUSR2, lambda *_: (profile.disable(), profile.dump_stats(path)))\n"
	"sys.argv[0] = 'daphne'\n"
	"runpy.run_module('daphne', run_name='__main__')\n"
)


@dataclass(frozen=True)
class Client:
	"""One WebSocket client: ``run`` is the run it watches (``after`` its last seq), or None for the tenant stream."""

	token: str
	port: int
	run: str | None
	after: int
	batch: bool = False


# --- clients (their own processes) --------------------------------------------------------------------


def client_process(clients: list[Client], redis_url: str) -> int:
	"""Connect every client, count the events they receive (reported to Redis), until told to stop."""
	return asyncio.run(_clients(clients, redis_url))


async def _clients(clients: list[Client], redis_url: str) -> int:
	import redis.asyncio as aioredis

	conn = aioredis.Redis.from_url(redis_url)
	counts = [0]
	stop = asyncio.Event()
	tasks = [asyncio.create_task(_client(c, counts, conn, stop, len(clients) / 10)) for c in clients]
	me = str(os.getpid())
	while not stop.is_set():
		await asyncio.sleep(0.2)
		await conn.hset(RECEIVED_KEY, me, counts[0])
		if await conn.exists(STOP_KEY):
			stop.set()
	await asyncio.gather(*tasks, return_exceptions=True)
	await conn.aclose()
	return counts[0]


async def _client(client: Client, counts: list[int], conn: Any, stop: asyncio.Event, spread: float) -> None:
	# Handshakes are spread out and retried: Daphne closes one not accepted within 5 s, and the
	# connects are not what this measures.
	await asyncio.sleep(random.random() * spread)
	ready = [False]
	for attempt in range(3):
		try:
			await _follow(client, counts, conn, stop, ready)
			return
		except Exception as exc:  # noqa: BLE001 - reported to the benchmark, which stops
			if attempt == 2 or ready[0]:
				await conn.rpush(DROPPED_KEY if ready[0] else FAILED_KEY, repr(exc)[:300])
				return
			await asyncio.sleep(1 + random.random() * 5)


async def _follow(
	client: Client, counts: list[int], conn: Any, stop: asyncio.Event, ready: list[bool]
) -> None:
	import websockets
	from websockets.typing import Origin

	path = "/ws/tenant/?" if client.run is None else f"/ws/runs/{client.run}/?after={client.after}&"
	path += "batch=1" if client.batch else "batch=0"
	async with websockets.connect(
		f"ws://127.0.0.1:{client.port}{path}",
		additional_headers={"Authorization": f"Bearer {client.token}"},
		origin=Origin(f"http://127.0.0.1:{client.port}"),
		open_timeout=120,
		max_size=2**24,
	) as ws:
		while True:
			message = json.loads(await ws.recv())
			if message["type"] == "caught_up":
				break
		ready[0] = True
		await conn.incr(READY_KEY)
		while not stop.is_set():
			try:
				raw = await asyncio.wait_for(ws.recv(), timeout=0.5)
			except TimeoutError:
				continue
			message = json.loads(raw)
			if message["type"] == "event":
				counts[0] += 1
			elif message["type"] == "events":
				counts[0] += len(message["events"])


# --- this process ------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
	"""User + system CPU time of ``pid`` so far."""
	fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
	return (int(fields[11]) + int(fields[12])) / TICKS


def free_port(start: int) -> int:
	"""The first free port from ``start``."""
	port = start
	while not port_free(port):
		port += 1
	return port


def start_redis(port: int, workdir: Path) -> subprocess.Popen[bytes]:
	"""A throwaway redis-server on ``port`` (no persistence)."""
	binary = shutil.which("redis-server")
	if binary is None:
		raise SystemExit("redis-server is needed (the benchmark measures a Redis server of its own)")
	proc = subprocess.Popen(
		[binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
		cwd=workdir,
		stdout=subprocess.DEVNULL,
		stderr=subprocess.DEVNULL,
		start_new_session=True,
	)
	deadline = time.monotonic() + 10
	while port_free(port):
		if time.monotonic() > deadline or proc.poll() is not None:
			proc.kill()
			raise SystemExit(f"redis-server did not start on port {port}")
		time.sleep(0.05)
	return proc


def start_servers(env: common.BenchEnv, count: int, profile: Path | None) -> list[subprocess.Popen[bytes]]:
	"""``count`` Daphne processes on ports from ``BASE_PORT`` (the first under cProfile with ``profile``)."""
	import httpx

	procs = []
	for i in range(count):
		port = BASE_PORT + i
		if not port_free(port):
			raise SystemExit(f"port {port} is in use: is another run of this benchmark going on?")
		wrap = ["-c", PROFILED, str(profile)] if profile is not None and i == 0 else ["-m", "daphne"]
		procs.append(
			subprocess.Popen(
				[
					sys.executable,
					*wrap,
					"-b",
					"127.0.0.1",
					"-p",
					str(port),
					"-v",
					"0",
					"config.asgi:application",
				],
				cwd=common.ROOT,
				stdin=subprocess.DEVNULL,
				stdout=(env.workdir / f"daphne-{port}.log").open("wb"),
				stderr=subprocess.STDOUT,
				start_new_session=True,
			)
		)
	for i, proc in enumerate(procs):
		common.wait_until(
			lambda port=BASE_PORT + i: _answers(httpx, port),
			timeout=60,
			interval=0.2,
			what=f"daphne on {BASE_PORT + i}",
		)
		if proc.poll() is not None:
			raise SystemExit(f"daphne exited with {proc.returncode}; see {env.workdir}")
	return procs


def _answers(httpx: Any, port: int) -> bool:
	try:
		return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
	except httpx.HTTPError:
		return False


def stop_servers(procs: list[subprocess.Popen[bytes]]) -> None:
	"""SIGTERM (Daphne stops cleanly, and cProfile writes its file), SIGKILL after 20 s."""
	for proc in procs:
		if proc.poll() is None:
			proc.terminate()
	for proc in procs:
		try:
			proc.wait(timeout=20)
		except subprocess.TimeoutExpired:
			proc.kill()
			proc.wait(timeout=10)


def received(conn: Any) -> int:
	"""Messages received so far by all the clients."""
	return sum(int(n) for n in conn.hvals(RECEIVED_KEY))


def publish(runs: list[tuple[str, str, int]], count: int, rate: float, seqs: dict[str, int]) -> None:
	"""``count`` step completions (2 events each) round-robin over ``runs`` at ``rate`` a second."""
	from workflows.engine.effects import live, publish_events

	began = time.monotonic()
	for i in range(count):
		delay = began + i / rate - time.monotonic()
		if delay > 0:
			time.sleep(delay)
		run_id, tenant_id, _ = runs[i % len(runs)]
		seq = seqs[run_id]
		n = seq // 2
		publish_events(
			run_id=run_id,
			tenant_id=tenant_id,
			events=[
				(
					seq + 1,
					"step.succeeded",
					f"root:s{n}",
					{"key": f"root:s{n}", "node": f"s{n}", "output": {}},
				),
				(
					seq + 2,
					"step.scheduled",
					f"root:s{n + 1}",
					{"key": f"root:s{n + 1}", "node": f"s{n + 1}", "attempt": 1},
				),
			],
		)
		seqs[run_id] = seq + 2
	live.flush(timeout=30)


def expected_messages(
	runs: list[tuple[str, str, int]], count: int, tenant_clients: dict[str, int], watchers: dict[str, int]
) -> int:
	"""Messages the clients get for ``count`` batches of 2 events round-robin over ``runs``."""
	total = 0
	for i in range(count):
		run_id, tenant_id, _ = runs[i % len(runs)]
		total += 2 * (tenant_clients.get(tenant_id, 0) + watchers.get(run_id, 0))
	return total


def wait_received(conn: Any, target: int, timeout: float) -> None:
	"""Wait until the clients have received ``target`` messages in all.

	When the server closed a client, fewer arrive: then until the count has not moved for 5 s.
	"""
	last, since = -1, time.monotonic()

	def done() -> bool:
		nonlocal last, since
		now = received(conn)
		if now != last:
			last, since = now, time.monotonic()
		return now >= target or (bool(conn.llen(DROPPED_KEY)) and time.monotonic() - since > 5)

	common.wait_until(done, timeout=timeout, interval=0.1, what=f"{target:,} messages")


def main() -> None:
	parser = argparse.ArgumentParser(
		description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
	)
	parser.add_argument("--clients", type=int, default=500, help="WebSocket clients (default 500)")
	parser.add_argument(
		"--run-watchers", type=int, default=100, help="of them, on a run's stream (default 100)"
	)
	parser.add_argument("--tenants", type=int, default=5, help="tenants (default 5)")
	parser.add_argument("--runs-per-tenant", type=int, default=2, help="watched runs per tenant (default 2)")
	parser.add_argument("--batches", type=int, default=200, help="step completions published (default 200)")
	parser.add_argument("--rate", type=float, default=5.0, help="step completions a second (default 5)")
	parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle CPU sampled (default 5)")
	parser.add_argument("--servers", type=int, default=2, help="Daphne processes (default 2)")
	parser.add_argument(
		"--frames",
		choices=("event", "batch"),
		default="event",
		help="event: one frame per event (default); batch: the clients ask for ?batch=1",
	)
	parser.add_argument("--client-procs", type=int, default=2, help="client processes (default 2)")
	parser.add_argument(
		"--profile", metavar="FILE", help="cProfile the first Daphne process into FILE (pstats)"
	)
	args = parser.parse_args()

	common.install_signal_handlers()
	workdir = Path(tempfile.mkdtemp(prefix="apg-bench-fanout-"))
	redis_port = free_port(6400)
	redis_proc = start_redis(redis_port, workdir)
	try:
		os.environ["BENCH_REDIS"] = f"redis://127.0.0.1:{redis_port}"
		os.environ["BENCH_REDIS_DB"] = "0"
		env = common.configure("ws_cpu")
		os.environ["API_RATE_PER_TOKEN"] = "10000000/minute"  # noqa: S105 - a rate, not a secret
		os.environ["API_RATE_PER_TENANT"] = "10000000/minute"
		common.prepare(env)
		measure(args, env, redis_proc.pid)
	finally:
		redis_proc.terminate()
		redis_proc.wait(timeout=10)
		shutil.rmtree(workdir, ignore_errors=True)


def measure(args: argparse.Namespace, env: common.BenchEnv, redis_pid: int) -> None:
	from workflows.context import tenant_scope
	from workflows.services.runs import run_start
	from workflows.services.tokens import api_token_create

	definition = common.linear_definition([{"id": "nap", "type": "wait", "config": {"duration": "PT1H"}}])
	runs: list[tuple[str, str, int]] = []
	tenants, owners = [], []
	for i in range(args.tenants):
		tenant, owner = common.make_tenant(f"fan{i}")
		tenants.append(tenant)
		owners.append(owner)
		workflow = common.make_workflow(tenant, owner, f"Waits {i}", definition)
		for _ in range(args.runs_per_tenant):
			run = run_start(actor=owner, workflow=workflow)
			run.refresh_from_db()
			runs.append((str(run.pk), str(tenant.pk), run.last_seq))
	clients: list[Client] = []
	tenant_clients: dict[str, int] = {}
	watchers: dict[str, int] = {}
	for i in range(args.clients):
		port = BASE_PORT + i % args.servers
		if i < args.run_watchers:
			run_id, tenant_id, last = runs[i % len(runs)]
			k = [str(t.pk) for t in tenants].index(tenant_id)
			watchers[run_id] = watchers.get(run_id, 0) + 1
		else:
			k = i % args.tenants
			run_id, last = None, 0
			tenant_clients[str(tenants[k].pk)] = tenant_clients.get(str(tenants[k].pk), 0) + 1
		with tenant_scope(tenants[k]):
			raw = api_token_create(actor=owners[k], tenant=tenants[k], name=f"fan-{i}").raw
		clients.append(Client(raw, port, run_id, last, batch=args.frames == "batch"))
	conn = common.redis_client()
	profile = Path(args.profile).resolve() if args.profile else None
	servers = start_servers(env, args.servers, profile)
	try:
		pids = {f"daphne {i + 1}": p.pid for i, p in enumerate(servers)} | {"redis": redis_pid}
		groups = [clients[a :: args.client_procs] for a in range(args.client_procs)]
		holder = threading.Thread(
			target=lambda: common.parallel_clients(client_process, [(g, env.redis_url) for g in groups]),
			name="clients",
		)
		holder.start()
		common.wait_until(
			lambda: int(conn.get(READY_KEY) or 0) + conn.llen(FAILED_KEY) >= len(clients),
			timeout=300,
			what="clients to connect",
		)
		failed = [f.decode() for f in conn.lrange(FAILED_KEY, 0, 4)]
		if failed:
			raise SystemExit(f"{conn.llen(FAILED_KEY)} clients failed, e.g. {failed}; logs in {env.workdir}")
		seqs = {run_id: last for run_id, _, last in runs}
		warm = expected_messages(runs, len(runs), tenant_clients, watchers)
		publish(runs, len(runs), 100.0, seqs)
		wait_received(conn, warm, 60)
		time.sleep(1)
		idle_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
		time.sleep(args.idle)
		idle = {name: (cpu_seconds(pid) - idle_before[name]) / args.idle for name, pid in pids.items()}
		if profile is not None:
			servers[0].send_signal(signal.SIGUSR1)
		before = {name: cpu_seconds(pid) for name, pid in pids.items()}
		mine = time.process_time()
		began = time.monotonic()
		start = received(conn)
		expected = expected_messages(runs, args.batches, tenant_clients, watchers)
		publish(runs, args.batches, args.rate, seqs)
		publisher_cpu = time.process_time() - mine
		wait_received(conn, start + expected, 120)
		elapsed = time.monotonic() - began
		spent = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
		if profile is not None:
			servers[0].send_signal(signal.SIGUSR2)
			time.sleep(2)
		messages = received(conn) - start
		dropped = [d.decode() for d in conn.lrange(DROPPED_KEY, 0, -1)]
		conn.set(STOP_KEY, 1)
		holder.join()
	finally:
		stop_servers(servers)
	print(
		f"ws_fanout_cpu: {args.clients} clients ({args.clients - args.run_watchers} on /ws/tenant/ over "
		f"{args.tenants} tenants, {args.run_watchers} on /ws/runs/ over {len(runs)} runs), {args.servers} "
		f"daphne processes; {args.batches} step completions (2 events) at {args.rate}/s -> {messages:,} "
		f"messages of {expected:,} in {elapsed:.1f} s; load average {common.load_average()}"
	)
	if dropped:
		print(f"  {len(dropped)} clients closed by the server while connected, e.g. {dropped[0]}")
	total = 0.0
	for name in pids:
		net = spent[name] - idle[name] * elapsed
		total += net
		print(
			f"  {name:9}: {spent[name] * 1000:8.0f} ms CPU ({idle[name] * 1000:.0f} ms/s idle) -> "
			f"{net / messages * 1e6:6.1f} us per delivered event"
		)
	print(f"  publisher (this process): {publisher_cpu / args.batches * 1e6:.0f} us CPU per step completion")
	print(f"  daphne + redis: {total / messages * 1e6:.1f} us CPU per delivered event")
	if args.profile:
		import pstats

		pstats.Stats(str(profile)).sort_stats("tottime").print_stats(40)
	common.cleanup_workdir(env)


if __name__ == "__main__":
	main()
