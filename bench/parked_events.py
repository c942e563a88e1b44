"""Parked runs: ``--runs`` runs (default 100,000) wait for an event; worker memory stays flat; then all resume.

Workflow: ``a (noop) -> w (wait_for_event "go", correlation ${ .input.k }) -> end``, run ``i``
started with input ``{"k": i}``.

1. Park: client processes (``--clients``, default 2) start every run through ``run_start``; one
   Celery worker (queues ``steps`` and ``engine``, prefork pool of 2) executes ``a`` and parks the
   run on its subscription. A parked run is only rows: the worker should hold nothing for it.
2. Worker RSS (consumer + pool processes) is sampled before parking, throughout, once every run is
   parked, after ``--idle`` seconds parked, and after the resume.
3. Resume: publisher processes (``--publishers``, default 2) publish one event per run (type
   ``go``, correlation ``i``) through ``event_publish_many``, ``--batch`` events a call (default
   100, as a client of ``POST /api/v1/events/bulk/`` would; ``--batch 1``: one ``event_publish``
   call per event). A publish advances the waiting run to its end in its own transaction.
   Resumed runs/s = runs / (last run's final commit - first publish call). Target >= 500 runs/s.

Every run must succeed, with exactly one succeeded step row for ``a`` and ``w``.

The default size takes long on a 2-core machine (the park phase runs at the engine's start
rate; see docs/performance.md); ``--runs 10000`` is a quicker check.

    uv run python bench/parked_events.py [--runs 100000] [--clients 2] [--publishers 2] [--batch 100]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402

TARGET_RATE = 500.0


def start_runs(first: int, last: int, workflow_id: Any, owner_id: Any) -> tuple[float, float]:
	"""Start runs ``first..last-1`` with input ``{"k": i}``; returns (first start, last start returned)."""
	from workflows.models import User, Workflow
	from workflows.services.runs import run_start

	owner = User.objects.get(pk=owner_id)
	workflow = Workflow.objects._unfiltered().select_related("tenant").get(pk=workflow_id)
	began = time.time()
	for i in range(first, last):
		run_start(actor=owner, workflow=workflow, input={"k": i})
	return began, time.time()


def publish_events(
	first: int, last: int, tenant_id: Any, owner_id: Any, batch: int
) -> tuple[float, float, int]:
	"""Publish the events of runs ``first..last-1``; returns (first call, last returned, deliveries).

	``batch`` 1: one ``event_publish`` per event; more: ``event_publish_many`` with that many.
	"""
	from workflows.models import Tenant, User
	from workflows.services.runs import EventItem, EventOutcome, event_publish, event_publish_many

	owner = User.objects.get(pk=owner_id)
	tenant = Tenant.objects.get(pk=tenant_id)
	delivered = 0
	began = time.time()
	if batch == 1:
		for i in range(first, last):
			delivered += event_publish(actor=owner, tenant=tenant, type="go", correlation=i).delivered
		return began, time.time(), delivered
	for start in range(first, last, batch):
		items = [EventItem("go", i) for i in range(start, min(start + batch, last))]
		for outcome in event_publish_many(actor=owner, tenant=tenant, events=items):
			if not isinstance(outcome, EventOutcome):
				raise RuntimeError(f"an event of the batch failed: {outcome}")
			delivered += outcome.delivered
	return began, time.time(), delivered


def worker_rss(pids: list[int]) -> int:
	"""Summed RSS of the worker process trees."""
	kids = common._children_map()
	return sum(common.tree_rss(p, kids) for p in pids)


def main() -> None:
	parser = argparse.ArgumentParser(
		description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
	)
	parser.add_argument("--runs", type=int, default=100_000, help="runs (default 100,000)")
	parser.add_argument("--clients", type=int, default=2, help="client processes starting runs (default 2)")
	parser.add_argument("--publishers", type=int, default=2, help="processes publishing events (default 2)")
	parser.add_argument(
		"--batch",
		type=int,
		default=100,
		help="events per event_publish_many call (default 100; 1: one event_publish per event)",
	)
	parser.add_argument("--idle", type=float, default=10.0, help="seconds to stay parked before resuming")
	parser.add_argument("--pool", default="prefork", help="worker pool (default prefork)")
	parser.add_argument("--concurrency", type=int, default=2, help="worker pool size (default 2)")
	parser.add_argument("--timeout", type=float, default=4 * 3600.0, help="give up after this many seconds")
	common.common_arguments(parser)
	args = parser.parse_args()

	common.install_signal_handlers()
	env = common.configure("parked_events")
	common.prepare(env)
	common.apply_whatif(args)
	tenant, owner = common.make_tenant()
	definition = common.linear_definition(
		[
			common.task_node("a"),
			{
				"id": "w",
				"type": "wait_for_event",
				"config": {"event_type": "go", "correlation": "${ .input.k }"},
			},
		]
	)
	workflow = common.make_workflow(tenant, owner, "Parked events", definition)
	spec = common.WorkerSpec("steps", ("steps", "engine"), pool=args.pool, concurrency=args.concurrency)
	print(
		f"parked_events: {args.runs} runs of noop -> wait_for_event; worker {spec.describe()}; "
		f"{args.clients} clients, {args.publishers} publishers; load average {common.load_average()}"
	)

	from workflows.models import EventSubscription

	with common.Cluster(env, [spec]) as cluster:
		workers = list(cluster.pids().values())
		groups = {"worker": workers, "client": [os.getpid()]}
		with common.RssSampler(groups) as park_memory:
			before = worker_rss(workers)
			spans = common.parallel_clients(
				start_runs, [(a, b, workflow.pk, owner.pk) for a, b in common.split(args.runs, args.clients)]
			)
			first_start, last_start = min(s for s, _ in spans), max(e for _, e in spans)
			common.wait_until(
				lambda: EventSubscription.objects._unfiltered().count() >= args.runs,
				timeout=args.timeout,
				interval=0.5,
				cluster=cluster,
				what=f"{args.runs} runs to park",
			)
			parked_at = time.time()
			parked = worker_rss(workers)
		print(
			f"  parked {args.runs} runs in {parked_at - first_start:.1f} s "
			f"({args.runs / (parked_at - first_start):.0f} runs/s; run_start calls took {last_start - first_start:.1f} s)"
		)
		time.sleep(args.idle)
		parked_idle = worker_rss(workers)
		with common.RssSampler(groups) as resume_memory:
			spans3 = common.parallel_clients(
				publish_events,
				[
					(a, b, tenant.pk, owner.pk, args.batch)
					for a, b in common.split(args.runs, args.publishers)
				],
			)
			first_publish = min(s for s, _, _ in spans3)
			last_publish = max(e for _, e, _ in spans3)
			delivered = sum(d for _, _, d in spans3)
			counts = common.wait_runs_finished(args.runs, timeout=args.timeout, cluster=cluster, interval=0.5)
		after = worker_rss(workers)
	if not args.keep_logs:
		common.cleanup_workdir(env)

	from django.db.models import Max

	from workflows.models import Run

	last_done = common.ts(Run.objects._unfiltered().aggregate(m=Max("updated_at"))["m"])
	problems = common.check_exactly_once(args.runs, ["a", "w"])
	if delivered != args.runs:
		problems.append(f"{delivered} events delivered, expected {args.runs}")
	rate = args.runs / (last_done - first_publish)
	print(f"  runs by status: {counts}; exactly-once check: {'OK' if not problems else '; '.join(problems)}")
	print(
		f"  worker RSS (consumer + pool): before {common.mib(before)}, peak while parking "
		f"{common.mib(park_memory.peak['worker'])}, all parked {common.mib(parked)}, parked {args.idle:g} s later "
		f"{common.mib(parked_idle)}, peak while resuming {common.mib(resume_memory.peak['worker'])}, after {common.mib(after)}"
	)
	print(
		f"  publishing (batches of {args.batch}) took {last_publish - first_publish:.1f} s "
		f"({args.runs / (last_publish - first_publish):.0f} events/s); last run finished "
		f"{last_done - last_publish:.1f} s after the last publish"
	)
	verdict = "MET" if rate >= TARGET_RATE and not problems else "MISSED"
	print(
		f"parked_events ({args.runs} runs, events in batches of {args.batch}): resumed {rate:.0f} runs/s (target >= {TARGET_RATE:.0f}: {verdict}); "
		f"worker RSS {common.mib(before)} before, {common.mib(parked_idle)} parked, {common.mib(after)} after"
		+ common.whatif_note()
	)


if __name__ == "__main__":
	main()
