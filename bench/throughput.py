"""Throughput: task steps per second that 2 worker processes push through the engine.

``--runs`` runs of a ``--steps``-step linear ``noop`` workflow are started with ``run_start``
while no worker is up (their first steps wait in Redis), so the client does not compete with
the workers for the 2 cores. Then one Celery worker (queues ``steps`` and ``engine``, prefork
pool of 2 processes) starts and drains them all; every step claims its row, runs the action,
records the outcome and advances its run, which dispatches the next step.

Steps/s = task steps executed / (last run's final commit - first step claimed), from the
database timestamps. Also reported: the rate between the 10th and 90th percentile of step
finish times (steady state, without ramp-up and tail).

    uv run python bench/throughput.py [--runs 300] [--steps 10]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402


def start_runs(first: int, last: int, workflow_id: Any, owner_id: Any) -> float:
	"""Start runs ``first..last-1`` (in a client process); returns the seconds it took."""
	from workflows.models import User, Workflow
	from workflows.services.runs import run_start

	owner = User.objects.get(pk=owner_id)
	workflow = Workflow.objects._unfiltered().select_related("tenant").get(pk=workflow_id)
	started = time.perf_counter()
	for _ in range(first, last):
		run_start(actor=owner, workflow=workflow)
	return time.perf_counter() - started


def main() -> None:
	parser = argparse.ArgumentParser(
		description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
	)
	parser.add_argument("--runs", type=int, default=300, help="runs (default 300)")
	parser.add_argument("--steps", type=int, default=10, help="noop steps per run (default 10)")
	parser.add_argument("--clients", type=int, default=2, help="client processes starting the runs")
	parser.add_argument("--pool", default="prefork", help="worker pool (default prefork)")
	parser.add_argument("--concurrency", type=int, default=2, help="worker processes (default 2)")
	common.common_arguments(parser)
	args = parser.parse_args()

	common.install_signal_handlers()
	env = common.configure("throughput")
	common.prepare(env)
	common.apply_whatif(args)
	tenant, owner = common.make_tenant()
	workflow = common.make_workflow(tenant, owner, "Throughput", common.noop_chain(args.steps))
	spec = common.WorkerSpec("steps", ("steps", "engine"), pool=args.pool, concurrency=args.concurrency)
	print(
		f"throughput: {args.runs} runs x {args.steps} noop steps; worker {spec.describe()}; "
		f"load average {common.load_average()}"
	)
	started = time.perf_counter()
	common.parallel_clients(
		start_runs, [(a, b, workflow.pk, owner.pk) for a, b in common.split(args.runs, args.clients)]
	)
	print(f"  started {args.runs} runs (workers down) in {time.perf_counter() - started:.1f} s")
	with (
		common.Cluster(env, [spec]) as cluster,
		common.CpuMeter({"workers": list(cluster.pids().values())}) as cpu,
	):
		counts = common.wait_runs_finished(args.runs, timeout=3600, cluster=cluster)
	if not args.keep_logs:
		common.cleanup_workdir(env)
	if counts.get("succeeded", 0) != args.runs:
		raise SystemExit(f"not every run succeeded: {counts}")

	from django.db.models import Max, Min

	from workflows.models import Run, StepRun

	tasks = StepRun.objects._unfiltered().filter(node_type="task")
	first = common.ts(tasks.aggregate(m=Min("started_at"))["m"])
	last = common.ts(Run.objects._unfiltered().aggregate(m=Max("updated_at"))["m"])
	finishes = sorted(common.ts(t) for t in tasks.values_list("finished_at", flat=True))
	total = len(finishes)
	p10, p90 = common.percentile(finishes, 10), common.percentile(finishes, 90)
	steady = 0.8 * total / (p90 - p10) if p90 > p10 else float("nan")
	overall = total / (last - first)
	print(f"  {total} task steps in {last - first:.2f} s; runs/s {args.runs / (last - first):.1f}")
	print(f"  steady state (10th-90th percentile of step finishes): {steady:.1f} steps/s")
	print(
		f"  CPU per task step: workers {common.ms(cpu.used['workers'] / total)}, "
		f"PostgreSQL {common.ms(cpu.used['postgres'] / total)} (backends alive at the end only: when the worker"
		f" opens new connections per task, theirs are missed); machine load average {common.load_average()}"
	)
	print(
		f"throughput ({spec.concurrency} worker processes, {args.steps}-step noop runs): {overall:.1f} steps/s"
		+ common.whatif_note()
	)


if __name__ == "__main__":
	main()
