"""Engine overhead: a 20-step linear workflow of ``noop`` steps against a raw Celery chain of 20 no-op tasks.

Both run on the same worker process (same broker, queue ``steps``, pool and concurrency),
one workflow at a time, alternating engine and baseline so drift hits both alike.

- engine: ``run_start`` of ``start -> s01 -> ... -> s20 -> end``; wall time from just before
  ``run_start`` to the commit of the run's final state (``Run.updated_at``, stamped by the
  worker in the last transition).
- baseline: ``chain(bench.work.si() x 20)`` on queue ``steps``; wall time from just before
  ``apply_async`` to the time the 20th task finished (it pushes ``time.time()`` to Redis).

Prints both medians and, as the last line, the ratio engine/baseline (target <= 2.0).

    uv run python bench/overhead.py [--reps 50] [--steps 20]
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402

TARGET_RATIO = 2.0


def engine_once(owner: Any, workflow: Any) -> float:
	"""One workflow through the engine: seconds from ``run_start`` to the final commit."""
	from workflows.models import Run
	from workflows.services.runs import run_start

	t0 = time.time()
	run = run_start(actor=owner, workflow=workflow)
	# The figure is the final commit's time, so the poll only has to notice the end; a tighter
	# one takes CPU from the worker and its database backend on 2 cores (the baseline's wait is
	# a blocking BLPOP).
	status = common.wait_run_finished(run.pk, interval=0.03)
	if status != "succeeded":
		raise RuntimeError(f"run {run.pk} ended {status}")
	updated = Run.objects._unfiltered().values_list("updated_at", flat=True).get(pk=run.pk)
	return common.ts(updated) - t0


def celery_once(steps: int, conn: Any) -> float:
	"""One raw Celery chain: seconds from ``apply_async`` to the end of its last task."""
	from celery import chain

	from bench.baseline_tasks import DONE_KEY, work

	token = uuid.uuid4().hex
	tasks = [work.si(0).set(queue="steps") for _ in range(steps - 1)]
	tasks.append(work.si(0, token).set(queue="steps"))
	t0 = time.time()
	chain(*tasks).apply_async()
	got = conn.blpop([DONE_KEY.format(token=token)], timeout=60)
	if got is None:
		raise RuntimeError("the baseline chain did not finish within 60 s")
	return float(got[1]) - t0


def main() -> None:
	parser = argparse.ArgumentParser(
		description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
	)
	parser.add_argument("--reps", type=int, default=50, help="workflows of each kind (default 50)")
	parser.add_argument("--steps", type=int, default=20, help="steps per workflow (default 20)")
	parser.add_argument("--warmup", type=int, default=5, help="uncounted workflows of each kind first")
	parser.add_argument("--pool", default="prefork", help="worker pool (default prefork)")
	parser.add_argument("--concurrency", type=int, default=2, help="worker pool size (default 2)")
	common.common_arguments(parser)
	args = parser.parse_args()

	common.install_signal_handlers()
	env = common.configure("overhead")
	common.prepare(env)
	common.apply_whatif(args)
	tenant, owner = common.make_tenant()
	workflow = common.make_workflow(tenant, owner, "Overhead", common.noop_chain(args.steps))
	spec = common.WorkerSpec("steps", ("steps", "engine"), pool=args.pool, concurrency=args.concurrency)
	print(
		f"overhead: {args.reps} x {args.steps}-step noop workflow vs raw Celery chain; worker {spec.describe()}; "
		f"load average {common.load_average()}"
	)
	engine: list[float] = []
	baseline: list[float] = []
	cpu_engine = cpu_baseline = 0.0
	with common.Cluster(env, [spec]) as cluster:
		conn = common.redis_client()
		workers = list(cluster.pids().values())
		for _ in range(args.warmup):
			engine_once(owner, workflow)
			celery_once(args.steps, conn)
		for _ in range(args.reps):
			with common.CpuMeter({"workers": workers}) as cpu:
				engine.append(engine_once(owner, workflow))
			cpu_engine += cpu.used["workers"] + cpu.used["postgres"]
			with common.CpuMeter({"workers": workers}) as cpu:
				baseline.append(celery_once(args.steps, conn))
			cpu_baseline += cpu.used["workers"] + cpu.used["postgres"]
	if not args.keep_logs:
		common.cleanup_workdir(env)
	e50, b50 = common.median(engine), common.median(baseline)
	for label, values in (("engine", engine), ("raw Celery chain", baseline)):
		print(
			f"  {label}: median {common.ms(common.median(values))}, p90 {common.ms(common.percentile(values, 90))}, "
			f"min {common.ms(min(values))}, max {common.ms(max(values))} "
			f"({common.ms(common.median(values) / args.steps)} per step)"
		)
	print(f"  engine overhead per step over the baseline: {common.ms((e50 - b50) / args.steps)}")
	steps = args.reps * args.steps
	print(
		f"  CPU per step (workers + PostgreSQL backends alive at the end): engine {common.ms(cpu_engine / steps)}, "
		f"raw Celery {common.ms(cpu_baseline / steps)}; machine load average {common.load_average()}"
	)
	ratio = e50 / b50
	verdict = "MET" if ratio <= TARGET_RATIO else "MISSED"
	print(
		f"overhead ({args.steps} noop steps): engine median {common.ms(e50)}, raw Celery median {common.ms(b50)}, "
		f"ratio engine/baseline {ratio:.2f} (target <= {TARGET_RATIO:.1f}: {verdict})" + common.whatif_note()
	)


if __name__ == "__main__":
	main()
