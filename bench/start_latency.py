"""Start latency: from the ``run_start`` service call to the first step starting on a worker.

For each run of ``start -> a (noop.noop) -> end``: a timestamp is taken just before
``run_start`` (client process) and compared with ``StepRun.started_at`` of step ``a``, which the
worker stamps when it claims the step. Runs are started one after another; by default the
client waits for each run to finish before starting the next ("drained": latency without
queueing), and ``--mode back-to-back`` starts them without waiting (the workers drain at the end).
Also reported: how long the whole ``run_start`` call took (it returns after its after-commit
side effects), and the latency split at ``StepRun.scheduled_at`` (the clock of the first
transition): service checks and rows before it; writes, commit, dispatch, broker and worker after.

Targets: p50 <= 10 ms, p99 <= 50 ms. The last line prints p50/p99 of the drained mode.

    uv run python bench/start_latency.py [--runs 1000] [--mode drained|back-to-back|both]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402

TARGET_P50 = 0.010
TARGET_P99 = 0.050


def measure(
	owner: Any, workflow: Any, runs: int, *, drained: bool, cluster: common.Cluster
) -> dict[str, list[float]]:
	"""Start ``runs`` runs; return per-run latencies (seconds) by component."""
	from workflows.models import StepRun
	from workflows.services.runs import run_start

	started: list[tuple[Any, float, float]] = []
	finished_before = sum(common.run_counts().values())
	for _ in range(runs):
		t0 = time.time()
		run = run_start(actor=owner, workflow=workflow)
		t1 = time.time()
		started.append((run.pk, t0, t1))
		if drained:
			common.wait_run_finished(run.pk)
	if not drained:
		common.wait_runs_finished(finished_before + runs, timeout=600, cluster=cluster)
	rows = {
		r: (s, c)
		for r, s, c in StepRun.objects._unfiltered()
		.filter(run_id__in=[r for r, _, _ in started], node_id="a", attempt=1)
		.values_list("run_id", "started_at", "scheduled_at")
	}
	out: dict[str, list[float]] = {"latency": [], "service": [], "before": [], "after": []}
	for run_id, t0, t1 in started:
		step_started, scheduled = rows[run_id]
		out["latency"].append(common.ts(step_started) - t0)
		out["service"].append(t1 - t0)
		out["before"].append(common.ts(scheduled) - t0)
		out["after"].append(common.ts(step_started) - common.ts(scheduled))
	return out


def report(label: str, figures: dict[str, list[float]]) -> tuple[float, float]:
	"""Print the percentiles of one mode; return (p50, p99) of the latency."""
	for name, what in (
		("service", "run_start call, whole (client)"),
		("before", "run_start called -> first transition begins (checks, run and audit rows)"),
		("after", "first transition begins -> step claimed (writes, commit, dispatch, broker, worker)"),
		("latency", "run_start called -> step claimed (START LATENCY)"),
	):
		values = figures[name]
		print(
			f"  [{label}] {what}: p50 {common.ms(common.percentile(values, 50))}, "
			f"p90 {common.ms(common.percentile(values, 90))}, p99 {common.ms(common.percentile(values, 99))}, "
			f"max {common.ms(max(values))}"
		)
	lat = figures["latency"]
	return common.percentile(lat, 50), common.percentile(lat, 99)


def main() -> None:
	parser = argparse.ArgumentParser(
		description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
	)
	parser.add_argument("--runs", type=int, default=1000, help="runs to start (default 1000)")
	parser.add_argument("--warmup", type=int, default=20, help="runs started first and not counted")
	parser.add_argument("--mode", choices=["drained", "back-to-back", "both"], default="both")
	parser.add_argument("--pool", default="prefork", help="worker pool (default prefork)")
	parser.add_argument("--concurrency", type=int, default=2, help="worker pool size (default 2)")
	common.common_arguments(parser)
	args = parser.parse_args()

	common.install_signal_handlers()
	env = common.configure("start_latency")
	common.prepare(env)
	common.apply_whatif(args)
	tenant, owner = common.make_tenant()
	workflow = common.make_workflow(
		tenant, owner, "Start latency", common.linear_definition([common.task_node("a")])
	)
	spec = common.WorkerSpec("steps", ("steps", "engine"), pool=args.pool, concurrency=args.concurrency)
	print(
		f"start_latency: {args.runs} runs of start -> noop -> end; worker {spec.describe()}; "
		f"load average {common.load_average()}"
	)
	results: dict[str, tuple[float, float]] = {}
	with common.Cluster(env, [spec]) as cluster:
		measure(owner, workflow, args.warmup, drained=True, cluster=cluster)
		modes = ["back-to-back", "drained"] if args.mode == "both" else [args.mode]
		for mode in modes:
			figures = measure(owner, workflow, args.runs, drained=mode == "drained", cluster=cluster)
			results[mode] = report(mode, figures)
	if not args.keep_logs:
		common.cleanup_workdir(env)
	for mode, (p50, p99) in results.items():
		if mode != modes[-1]:
			print(f"{mode}: p50 {common.ms(p50)}, p99 {common.ms(p99)}")
	p50, p99 = results[modes[-1]]
	verdict = "MET" if p50 <= TARGET_P50 and p99 <= TARGET_P99 else "MISSED"
	print(
		f"start latency ({modes[-1]}, {args.runs} runs): p50 {common.ms(p50)}, p99 {common.ms(p99)} "
		f"(targets p50 <= 10 ms, p99 <= 50 ms: {verdict})" + common.whatif_note()
	)


if __name__ == "__main__":
	main()
