"""Bounded evaluation: the sandbox pool under runaway, hostile and concurrent expressions."""

from __future__ import annotations

import os
import signal
import threading
import time
import types
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import pytest

from workflows.expressions import (
	ExpressionRuntimeError,
	ExpressionSandboxError,
	ExpressionTimeout,
	Limits,
	compile_expression,
	current_limits,
	sandbox,
	shutdown,
)
from workflows.expressions.sandbox import SandboxPool, _Died, _Overrun, _Worker, get_pool


def _pid(worker: _Worker) -> int:
	assert worker.process.pid is not None
	return worker.process.pid


def _idle_worker() -> _Worker:
	pool = get_pool()
	compile_expression("$input | length").evaluate({"input": [1]})
	return pool._idle[-1]


@pytest.mark.parametrize(
	"source",
	[
		"def f: f; f",
		"[range(1e12)] | length",
		"[limit(1e12; repeat(1))] | length",
		'[range(1e9) | select("aaaaaaaaaaaaaaaaaaaa!" | test("^(a|aa)+$"))] | length',
	],
)
def test_runaway_expressions_are_stopped_in_time_and_the_pool_recovers(
	source: str, caplog: pytest.LogCaptureFixture
) -> None:
	expression = compile_expression(source)

	started = time.monotonic()
	with pytest.raises(ExpressionTimeout) as caught:
		expression.evaluate({}, timeout=0.3)
	elapsed = time.monotonic() - started

	assert elapsed < 0.6
	assert (
		str(caught.value) == f"expression '{source}' failed: expression ran longer than 0.3 s and was stopped"
	)
	assert compile_expression("[1, 2] | add").evaluate({}) == 3
	[record] = [r for r in caplog.records if r.name == "workflows.expressions.sandbox"]
	assert record.levelname == "WARNING"
	assert "replaced: no reply within" in record.getMessage()
	assert record.__dict__["expression"] == source


def test_default_timeout_comes_from_the_limits(limits: Any) -> None:
	limits(timeout=0.25)

	with pytest.raises(ExpressionTimeout, match=r"longer than 0\.25 s"):
		compile_expression("def f: f; f").evaluate({})


def test_memory_bombs_fail_cleanly_and_the_pool_recovers(limits: Any) -> None:
	limits(memory_bytes=256 << 20)
	bomb = compile_expression('reduce range(1e9) as $i ("x"; . + .) | length')

	with pytest.raises(ExpressionSandboxError, match="the usual cause is the 256 MiB memory limit") as caught:
		bomb.evaluate({}, timeout=5.0)
	assert "killed by SIG" in caught.value.message
	# jq folds constants while compiling, so this one strikes at compile time.
	with pytest.raises(ExpressionSandboxError, match="256 MiB memory limit"):
		compile_expression('"x" * 5e8 | length')

	assert compile_expression("[1, 2] | add").evaluate({}) == 3


def test_jq_refuses_some_bombs_itself() -> None:
	with pytest.raises(ExpressionRuntimeError, match="Repeat string result too long"):
		compile_expression('"x" * 1e10').evaluate({})
	with pytest.raises(ExpressionRuntimeError, match="Regex failure: retry-limit-in-match over"):
		compile_expression(
			'"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!" | test("^(a|aa)+$")'
		).evaluate({})


def test_many_threads_evaluate_at_once_without_crosstalk() -> None:
	expression = compile_expression("$input.n as $n | [range($n)] | map(. * $n) | add")

	def evaluate(n: int) -> tuple[int, Any]:
		return n, expression.evaluate({"input": {"n": n}})

	with ThreadPoolExecutor(max_workers=16) as executor:
		results = list(executor.map(evaluate, range(200)))

	assert all(result == n * sum(range(n)) or (n == 0 and result is None) for n, result in results)
	assert get_pool().size <= current_limits().pool_size


def test_threads_share_the_pool_while_one_sandbox_is_stuck() -> None:
	stuck = compile_expression("def f: f; f")
	quick = compile_expression("$input + 1")
	errors: list[BaseException] = []

	def hog() -> None:
		try:
			stuck.evaluate({}, timeout=0.5)
		except ExpressionTimeout as exc:
			errors.append(exc)

	thread = threading.Thread(target=hog)
	thread.start()
	time.sleep(0.05)
	results = [quick.evaluate({"input": n}) for n in range(20)]
	thread.join()

	assert results == [n + 1 for n in range(20)]
	assert len(errors) == 1


def test_waiting_for_a_free_sandbox_is_bounded(limits: Any) -> None:
	limits(pool_size=1, acquire_timeout=0.2)
	stuck = compile_expression("def f: f; f")
	thread = threading.Thread(
		target=lambda: pytest.raises(ExpressionTimeout, stuck.evaluate, {}, timeout=0.5)
	)
	thread.start()
	time.sleep(0.1)

	with pytest.raises(ExpressionSandboxError, match=r"no sandbox process became free within 0\.2 s"):
		compile_expression("$input + 2").evaluate({"input": 1})
	thread.join()


def test_the_server_environment_is_invisible_to_expressions() -> None:
	assert "PATH" in os.environ

	assert compile_expression("$ENV").evaluate({}) == {}
	assert compile_expression("env | length").evaluate({}) == 0


def test_debug_output_goes_nowhere() -> None:
	assert compile_expression('"hello" | debug | stderr | ascii_upcase').evaluate({}) == "HELLO"


def test_a_sandbox_killed_from_outside_is_reported_and_replaced() -> None:
	worker = _idle_worker()
	os.kill(_pid(worker), signal.SIGKILL)
	time.sleep(0.05)
	pool = get_pool()
	pool._idle.remove(worker)
	pool._idle.append(worker)  # make sure the dead one is used next

	with pytest.raises(ExpressionSandboxError, match="killed by SIGKILL"):
		compile_expression("$input | length").evaluate({"input": [1, 2]})

	assert compile_expression("$input | length").evaluate({"input": [1, 2]}) == 2


def test_a_sandbox_that_does_not_start_is_reported(limits: Any) -> None:
	limits(startup_timeout=0.001)

	with pytest.raises(ExpressionSandboxError, match=r"did not start within 0\.001 s"):
		compile_expression("$input | length").evaluate({"input": [1]})


def test_changing_sandbox_limits_restarts_the_pool(limits: Any) -> None:
	before = get_pool()
	limits(timeout=0.9)
	assert get_pool() is before

	limits(child_cache_size=16)
	after = get_pool()

	assert after is not before
	assert after.limits.child_cache_size == 16


def test_threads_starting_at_once_share_one_pool() -> None:
	shutdown()
	barrier = threading.Barrier(8)

	def first_use() -> SandboxPool:
		barrier.wait()
		return get_pool()

	with ThreadPoolExecutor(max_workers=8) as executor:
		pools = list(executor.map(lambda _: first_use(), range(8)))

	assert all(pool is pools[0] for pool in pools)


def test_shutdown_stops_the_sandboxes_and_the_next_evaluation_restarts() -> None:
	worker = _idle_worker()

	shutdown()
	shutdown()  # a second call has nothing left to stop

	assert worker.process.exitcode == 0
	assert compile_expression("$input | length").evaluate({"input": [1, 2, 3]}) == 3


def test_a_forked_process_gets_its_own_pool(monkeypatch: pytest.MonkeyPatch) -> None:
	parents = get_pool()
	monkeypatch.setattr(sandbox, "_pool", parents)
	monkeypatch.setattr(parents, "pid", -1)  # as seen from a forked child

	childs = get_pool()
	assert childs is not parents
	assert childs.pid == os.getpid()
	childs.close()

	monkeypatch.setattr(sandbox, "_pool", parents)
	shutdown()  # the child must not stop its parent's sandboxes
	assert not parents._closed


# -- pool bookkeeping, with stand-in workers ---------------------------------------------------


class _FakeWorker:
	created: list[_FakeWorker] = []
	behaviour: list[Any] = []

	def __init__(self, settings: Any) -> None:
		self.process = types.SimpleNamespace(pid=0)
		self.killed = self.closed = False
		_FakeWorker.created.append(self)

	def call(self, request: tuple[Any, ...], *, timeout: float, startup_timeout: float) -> tuple[Any, ...]:
		action = _FakeWorker.behaviour.pop(0) if _FakeWorker.behaviour else ("ok", "1")
		if isinstance(action, BaseException):
			raise action
		return action

	def kill(self) -> None:
		self.killed = True

	def close(self) -> None:
		self.closed = True


@pytest.fixture
def fake_pool(monkeypatch: pytest.MonkeyPatch) -> SandboxPool:
	_FakeWorker.created = []
	_FakeWorker.behaviour = []
	monkeypatch.setattr(sandbox, "_Worker", _FakeWorker)
	return SandboxPool(Limits(pool_size=2, acquire_timeout=0.1))


def test_pool_reuses_idle_sandboxes(fake_pool: SandboxPool) -> None:
	for _ in range(3):
		assert fake_pool.request(("eval",), timeout=1) == ("ok", "1")

	assert len(_FakeWorker.created) == 1
	assert fake_pool.size == 1


def test_pool_replaces_sandboxes_that_overrun_die_or_run_out_of_memory(fake_pool: SandboxPool) -> None:
	_FakeWorker.behaviour = [_Overrun(), _Died("it exited with status 3"), ("memory", "ran out of memory")]

	with pytest.raises(ExpressionTimeout):
		fake_pool.request(("eval",), timeout=0.5, source=".")
	with pytest.raises(ExpressionSandboxError, match="status 3"):
		fake_pool.request(("eval",), timeout=0.5)
	with pytest.raises(ExpressionSandboxError, match="ran out of memory"):
		fake_pool.request(("eval",), timeout=0.5)

	assert [worker.killed for worker in _FakeWorker.created] == [True, True, True, False]
	assert fake_pool.size == 1


def test_an_interrupted_request_retires_its_sandbox(fake_pool: SandboxPool) -> None:
	_FakeWorker.behaviour = [KeyboardInterrupt()]

	with pytest.raises(KeyboardInterrupt):
		fake_pool.request(("eval",), timeout=0.5)

	assert _FakeWorker.created[0].killed
	assert fake_pool.size == 1


def test_a_sandbox_that_cannot_be_started_frees_its_slot(
	fake_pool: SandboxPool, monkeypatch: pytest.MonkeyPatch
) -> None:
	def broken(settings: Any) -> Any:
		raise OSError("no more processes")

	monkeypatch.setattr(sandbox, "_Worker", broken)

	with pytest.raises(OSError, match="no more processes"):
		fake_pool.request(("eval",), timeout=0.5)
	assert fake_pool.size == 0


def test_a_replacement_that_cannot_be_started_frees_its_slot(
	fake_pool: SandboxPool, monkeypatch: pytest.MonkeyPatch
) -> None:
	fake_pool.request(("eval",), timeout=0.5)
	_FakeWorker.behaviour = [_Overrun()]

	def broken(settings: Any) -> Any:
		raise OSError("no more processes")

	monkeypatch.setattr(sandbox, "_Worker", broken)

	with pytest.raises(OSError, match="no more processes"):
		fake_pool.request(("eval",), timeout=0.5)
	assert fake_pool.size == 0


def test_a_closed_pool_refuses_work_and_retires_busy_sandboxes(fake_pool: SandboxPool) -> None:
	fake_pool.request(("eval",), timeout=0.5)
	idle = _FakeWorker.created[0]
	busy = cast(_FakeWorker, fake_pool._acquire(None))
	overrun = cast(_FakeWorker, fake_pool._acquire(None))

	fake_pool.close()
	fake_pool._release(cast(_Worker, busy))
	fake_pool._replace(cast(_Worker, overrun))

	assert idle is busy or idle.closed
	assert busy.closed
	assert overrun.killed
	assert fake_pool.size == 0
	with pytest.raises(ExpressionSandboxError, match="shut down"):
		fake_pool.request(("eval",), timeout=0.5)


def test_callers_wait_for_a_free_sandbox(fake_pool: SandboxPool) -> None:
	first = fake_pool._acquire(None)
	second = fake_pool._acquire(None)
	threading.Timer(0.02, fake_pool._release, args=(first,)).start()

	assert fake_pool._acquire(None) is first
	fake_pool._release(first)
	fake_pool._release(second)


# -- describing how a sandbox died ----------------------------------------------------------------


class _GoneProcess:
	def __init__(self, exitcode: int | None) -> None:
		self.exitcode = exitcode

	def join(self, timeout: float | None = None) -> None:
		return None

	def kill(self) -> None:
		return None


@pytest.mark.parametrize(
	("exitcode", "description"),
	[
		(None, "its pipe broke"),
		(-signal.SIGABRT, "it was killed by SIGABRT"),
		(-250, "it was killed by signal 250"),
		(3, "it exited with status 3"),
	],
)
def test_exit_descriptions(exitcode: int | None, description: str) -> None:
	worker = _Worker.__new__(_Worker)
	cast(Any, worker).process = _GoneProcess(exitcode)

	assert worker._exit_description() == description


def test_close_kills_a_sandbox_that_ignores_the_request_to_stop() -> None:
	worker = _idle_worker()
	pool = get_pool()
	pool._idle.remove(worker)
	pool._alive -= 1
	os.kill(_pid(worker), signal.SIGSTOP)

	worker.close()

	assert worker.process.exitcode == -signal.SIGKILL
