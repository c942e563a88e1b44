"""Burst of waiting runs: ``--runs`` runs (default 10,000) of ``a (noop) -> w (wait 5 s) -> b (noop)`` started at once.

Client processes (``--clients``, default 2) start all runs through ``run_start`` as fast as they
can while one Celery worker (queues ``steps`` and ``engine``, prefork pool of 2) and Celery beat
(the timer sweep every second) run. A wait holds no worker: it is a ``Timer`` row plus a Celery
countdown (fast path); whichever fires first wins, the other finds nothing to do.

Checked: every run succeeded, and each of ``a``, ``w`` and ``b`` has exactly one step row per run,
succeeded (none lost, none duplicated); no timer is left.

Reported: time to start the burst, time from the last start to the last completion (target
<= 60 s on 2 cores), and the peak memory (RSS) of all processes: clients + worker (consumer and
pool processes) + beat, sampled every 0.25 s (PostgreSQL and Redis are not counted; Redis'
peak is printed separately).

    uv run python bench/burst_wait.py [--runs 10000] [--clients 2] [--wait 5]
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

TARGET_SECONDS = 60.0


def start_runs(first: int, last: int, workflow_id: Any, owner_id: Any) -> tuple[float, float]:
	"""Start runs ``first..last-1`` (in a client process); returns (first start, last start returned)."""
	from workflows.models import User, Workflow
	from workflows.services.runs import run_start

	owner = User.objects.get(pk=owner_id)
	workflow = Workflow.objects._unfiltered().select_related("tenant").get(pk=workflow_id)
	began = time.time()
	for _ in range(first, last):
		run_start(actor=owner, workflow=workflow)
	return began, time.time()


def main() -> None:
	parser = argparse.ArgumentParser(
		description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
	)
	parser.add_argument("--runs", type=int, default=10_000, help="runs (default 10,000)")
	parser.add_argument("--clients", type=int, default=2, help="client processes starting runs (default 2)")
	parser.add_argument("--wait", type=float, default=5.0, help="seconds each run waits (default 5)")
	parser.add_argument("--pool", default="prefork", help="worker pool (default prefork)")
	parser.add_argument("--concurrency", type=int, default=2, help="worker pool size (default 2)")
	parser.add_argument("--timeout", type=float, default=3600.0, help="give up after this many seconds")
	common.common_arguments(parser)
	args = parser.parse_args()

	common.install_signal_handlers()
	env = common.configure("burst_wait")
	common.prepare(env)
	common.apply_whatif(args)
	tenant, owner = common.make_tenant()
	definition = common.linear_definition(
		[
			common.task_node("a"),
			{"id": "w", "type": "wait", "config": {"duration": args.wait}},
			common.task_node("b"),
		]
	)
	workflow = common.make_workflow(tenant, owner, "Burst wait", definition)
	spec = common.WorkerSpec("steps", ("steps", "engine"), pool=args.pool, concurrency=args.concurrency)
	print(
		f"burst_wait: {args.runs} runs of noop -> wait {args.wait:g} s -> noop; worker {spec.describe()} + beat; "
		f"{args.clients} client processes; load average {common.load_average()}"
	)
	redis = common.redis_client()
	with common.Cluster(env, [spec], beat=True) as cluster:
		pids = cluster.pids()
		groups = {
			"client": [os.getpid()],
			"worker": [p for n, p in pids.items() if n != "beat"],
			"beat": [pids["beat"]],
		}
		with common.RssSampler(groups) as memory:
			idle = dict(memory.last)
			spans = common.parallel_clients(
				start_runs, [(a, b, workflow.pk, owner.pk) for a, b in common.split(args.runs, args.clients)]
			)
			first_start = min(s for s, _ in spans)
			last_start = max(e for _, e in spans)
			print(
				f"  started {args.runs} runs in {last_start - first_start:.1f} s ({args.runs / (last_start - first_start):.0f} runs/s)"
			)
			counts = common.wait_runs_finished(args.runs, timeout=args.timeout, cluster=cluster, interval=0.5)
	redis_peak = int(redis.info("memory").get("used_memory_peak", 0))
	if not args.keep_logs:
		common.cleanup_workdir(env)

	from django.db.models import Max

	from workflows.models import Run, Timer

	last_done = common.ts(Run.objects._unfiltered().aggregate(m=Max("finished_at"))["m"])
	problems = common.check_exactly_once(args.runs, ["a", "w", "b"])
	timers = Timer.objects._unfiltered().count()
	if timers:
		problems.append(f"{timers} timers left")
	print(f"  runs by status: {counts}")
	print(f"  exactly-once check: {'OK' if not problems else '; '.join(problems)}")
	print(
		"  peak RSS: "
		+ ", ".join(
			f"{label} {common.mib(value)} (idle {common.mib(idle.get(label, 0))})"
			for label, value in memory.peak.items()
		)
		+ f"; Redis used_memory_peak {common.mib(redis_peak)}"
	)
	span = last_done - last_start
	verdict = "MET" if span <= TARGET_SECONDS and not problems else "MISSED"
	print(
		f"burst_wait ({args.runs} runs, wait {args.wait:g} s): last start -> last completion {span:.1f} s "
		f"(target <= {TARGET_SECONDS:.0f} s: {verdict}); peak RSS of all processes {common.mib(memory.peak_total)}; "
		f"{'all succeeded exactly once' if not problems else 'CHECK FAILED'}" + common.whatif_note()
	)


if __name__ == "__main__":
	main()
