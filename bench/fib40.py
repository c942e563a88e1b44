"""CPU-bound chain: 40 sequential ``compute.fibonacci`` (n=25, about 10 ms of CPU each) steps on ``steps.cpu``.

One worker process executes them (``-Q steps.cpu,engine``, prefork pool of 1 by default; ``--pool
solo`` runs everything in the consumer process itself). Wall time of one workflow: from just
before ``run_start`` to the commit of the run's final state (``Run.updated_at``). Target: <= 0.8 s
(the 40 computations alone take about 0.4 s).

Baseline, on the same worker: a raw Celery chain of 40 ``bench.work(25)`` tasks on ``steps.cpu``,
timed from ``apply_async`` to the end of the 40th task. Workflows and chains alternate; the
medians are printed, and the last line gives the engine's median, the target verdict and the
ratio engine/baseline.

    uv run python bench/fib40.py [--reps 5] [--steps 40] [--n 25] [--pool prefork|solo]
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

TARGET_SECONDS = 0.8


def fib_definition(steps: int, n: int) -> dict[str, Any]:
	"""``steps`` sequential fibonacci tasks on the CPU queue."""
	return common.linear_definition(
		[
			common.task_node(f"f{i:02d}", "compute", "fibonacci", input={"n": n}, queue="steps.cpu")
			for i in range(1, steps + 1)
		]
	)


def engine_once(owner: Any, workflow: Any) -> float:
	"""Seconds from ``run_start`` to the run's final commit."""
	from workflows.models import Run
	from workflows.services.runs import run_start

	t0 = time.time()
	run = run_start(actor=owner, workflow=workflow)
	status = common.wait_run_finished(run.pk, interval=0.005)
	if status != "succeeded":
		raise RuntimeError(f"run {run.pk} ended {status}")
	return common.ts(Run.objects._unfiltered().values_list("updated_at", flat=True).get(pk=run.pk)) - t0


def celery_once(steps: int, n: int, conn: Any) -> float:
	"""Seconds from ``apply_async`` of the raw chain to the end of its last task."""
	from celery import chain

	from bench.baseline_tasks import DONE_KEY, work

	token = uuid.uuid4().hex
	tasks = [work.si(n).set(queue="steps.cpu") for _ in range(steps - 1)]
	tasks.append(work.si(n, token).set(queue="steps.cpu"))
	t0 = time.time()
	chain(*tasks).apply_async()
	got = conn.blpop([DONE_KEY.format(token=token)], timeout=120)
	if got is None:
		raise RuntimeError("the baseline chain did not finish within 120 s")
	return float(got[1]) - t0


def compute_floor(steps: int, n: int) -> float:
	"""Seconds the computations alone take in this process (the floor of both figures)."""
	from connectors.builtin.compute import naive_fibonacci

	started = time.perf_counter()
	for _ in range(steps):
		naive_fibonacci(n)
	return time.perf_counter() - started


def main() -> None:
	parser = argparse.ArgumentParser(
		description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
	)
	parser.add_argument("--reps", type=int, default=5, help="workflows of each kind (default 5)")
	parser.add_argument("--steps", type=int, default=40, help="sequential steps (default 40)")
	parser.add_argument("--n", type=int, default=25, help="fibonacci n (default 25, about 10 ms)")
	parser.add_argument("--warmup", type=int, default=1, help="uncounted workflows of each kind first")
	parser.add_argument("--pool", default="prefork", help="worker pool: prefork (default) or solo")
	common.common_arguments(parser)
	args = parser.parse_args()

	common.install_signal_handlers()
	env = common.configure("fib40")
	common.prepare(env)
	common.apply_whatif(args)
	tenant, owner = common.make_tenant()
	workflow = common.make_workflow(tenant, owner, "Fib40", fib_definition(args.steps, args.n))
	spec = common.WorkerSpec("cpu", ("steps.cpu", "engine"), pool=args.pool, concurrency=1)
	floor = compute_floor(args.steps, args.n)
	print(
		f"fib40: {args.steps} x fibonacci({args.n}) in sequence; worker {spec.describe()}; "
		f"computations alone {floor:.3f} s; load average {common.load_average()}"
	)
	engine: list[float] = []
	baseline: list[float] = []
	with common.Cluster(env, [spec]):
		conn = common.redis_client()
		for _ in range(args.warmup):
			engine_once(owner, workflow)
			celery_once(args.steps, args.n, conn)
		for _ in range(args.reps):
			engine.append(engine_once(owner, workflow))
			baseline.append(celery_once(args.steps, args.n, conn))
	if not args.keep_logs:
		common.cleanup_workdir(env)
	for label, values in (("engine", engine), ("raw Celery chain", baseline)):
		print(
			f"  {label}: median {common.median(values):.3f} s, min {min(values):.3f} s, max {max(values):.3f} s "
			f"({common.ms((common.median(values) - floor) / args.steps)} per step beyond the computation)"
		)
	e50, b50 = common.median(engine), common.median(baseline)
	verdict = "MET" if e50 <= TARGET_SECONDS else "MISSED"
	print(
		f"fib40 ({args.steps} x fib({args.n}), 1 worker process): engine {e50:.3f} s "
		f"(target <= {TARGET_SECONDS} s: {verdict}), raw Celery {b50:.3f} s, ratio engine/baseline {e50 / b50:.2f}"
		+ common.whatif_note()
	)


if __name__ == "__main__":
	main()
