"""A pool of long-lived sandbox processes that evaluate jq under hard limits.

libjq cannot be interrupted from Python, so an expression that does not terminate
(``def f: f; f``), allocates without bound (``[range(1e12)]``) or backtracks forever in a regex
has to run somewhere it can be killed. Each sandbox is a process started with the ``spawn``
method (never ``fork``: the parent may be a threaded Celery worker or an ASGI server, and a
forked copy of a threaded process can deadlock on a lock some other thread held). The sandbox
lowers its own limits (address space, CPU, no core files), clears its environment and then
answers requests; see :mod:`workflows.expressions.worker` for the protocol.

The parent waits for each reply with a deadline. On overrun it kills the process, starts a
replacement at once (it warms up while the caller handles the error) and raises
:class:`~workflows.expressions.errors.ExpressionTimeout`. A process that dies mid-request
(the memory limit makes jq abort) is replaced the same way. The pool starts lazily, hands
each process to one thread at a time, and stops its processes at interpreter exit.

A process that forks after using the pool (a pre-forking server) gets a fresh pool in the
child: the inherited one belongs to the parent.

Like any ``spawn`` child, a sandbox imports the parent's main module (as ``__mp_main__``)
before it runs, so entry points must keep their work under ``if __name__ == "__main__":``
(manage.py, celery, daphne and pytest do), and whatever that module imports adds to each
sandbox's start-up time (about 0.1 s for a bare interpreter with jq, 0.25 s under pytest).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from workflows.expressions.errors import ExpressionSandboxError, ExpressionTimeout, format_bytes
from workflows.expressions.limits import Limits, current_limits, on_limits_change
from workflows.expressions.worker import WorkerSettings, child_main

__all__ = ["SandboxPool", "get_pool", "shutdown"]

logger = logging.getLogger(__name__)

_context = multiprocessing.get_context("spawn")
# Process.start() walks multiprocessing's shared list of children; starting from several
# threads at once can trip over that list.
_start_lock = threading.Lock()


class _Overrun(Exception):
	"""The sandbox did not answer before the deadline."""


class _Died(Exception):
	"""The sandbox process is gone."""


class _Worker:
	"""One sandbox process and the parent's end of its pipe."""

	def __init__(self, settings: WorkerSettings) -> None:
		parent_end, child_end = _context.Pipe(duplex=True)
		process = _context.Process(
			target=child_main, args=(child_end, settings), name="apg-expression-sandbox", daemon=True
		)
		with _start_lock:
			process.start()
		child_end.close()
		self.process = process
		self.conn: Connection = parent_end
		self.ready = False

	def call(self, request: tuple[Any, ...], *, timeout: float, startup_timeout: float) -> tuple[Any, ...]:
		"""Send ``request`` and wait at most ``timeout`` seconds for the reply.

		Raises:
			_Overrun: No reply in time (or the process never became ready).
			_Died: The process exited or the pipe broke.
		"""
		try:
			if not self.ready:
				# Startup is not the expression's fault: it gets its own, generous deadline.
				if not self.conn.poll(startup_timeout):
					raise _Died(f"did not start within {startup_timeout!r} s")
				self.conn.recv()
				self.ready = True
			self.conn.send(request)
			if not self.conn.poll(timeout):
				raise _Overrun
			return self.conn.recv()
		except (EOFError, OSError) as exc:
			raise _Died(self._exit_description()) from exc

	def _exit_description(self) -> str:
		self.process.join(1.0)
		code = self.process.exitcode
		if code is None:
			return "its pipe broke"
		if code < 0:
			try:
				return f"it was killed by {signal.Signals(-code).name}"
			except ValueError:
				return f"it was killed by signal {-code}"
		return f"it exited with status {code}"

	def kill(self) -> None:
		"""Stop the process now and release its resources."""
		self.process.kill()
		self.process.join(1.0)
		self.conn.close()

	def close(self) -> None:
		"""Ask the process to exit, killing it if it does not."""
		with contextlib.suppress(OSError):
			self.conn.send(None)
		self.process.join(0.5)
		if self.process.exitcode is None:
			self.process.kill()
			self.process.join(1.0)
		self.conn.close()


def _log_replaced(*, worker: _Worker, reason: str, source: str | None) -> None:
	# The source holds secret markers, never secret values, so it is safe to log; keep it short.
	expression = None if source is None else source[:200]
	logger.warning(
		"expression sandbox %s replaced: %s",
		worker.process.pid,
		reason,
		extra={"sandbox_pid": worker.process.pid, "reason": reason, "expression": expression},
	)


class SandboxPool:
	"""Sandbox processes shared by all threads of one process.

	Args:
		limits: The limits the processes start with; the pool is replaced when they change.
	"""

	def __init__(self, limits: Limits) -> None:
		self.limits = limits
		self.pid = os.getpid()
		self._settings = WorkerSettings(
			memory_bytes=limits.memory_bytes,
			cpu_seconds=limits.cpu_seconds,
			cache_size=limits.child_cache_size,
		)
		self._cond = threading.Condition()
		self._idle: list[_Worker] = []
		self._alive = 0
		self._closed = False

	@property
	def size(self) -> int:
		"""How many sandbox processes exist now (idle and busy)."""
		return self._alive

	def request(
		self, message: tuple[Any, ...], *, timeout: float, source: str | None = None
	) -> tuple[Any, ...]:
		"""Send one request to a free sandbox and return its reply.

		Args:
			message: A request tuple (see :mod:`workflows.expressions.worker`).
			timeout: Seconds to wait for the reply.
			source: The expression, for error messages.

		Returns:
			The reply tuple.

		Raises:
			ExpressionTimeout: No reply within ``timeout``; the sandbox was killed and replaced.
			ExpressionSandboxError: The sandbox died, or none became free in time.
		"""
		worker = self._acquire(source)
		try:
			reply = worker.call(message, timeout=timeout, startup_timeout=self.limits.startup_timeout)
		except _Overrun:
			_log_replaced(worker=worker, reason=f"no reply within {timeout!r} s", source=source)
			self._replace(worker)
			raise ExpressionTimeout(timeout, source=source) from None
		except _Died as exc:
			_log_replaced(worker=worker, reason=f"died: {exc}", source=source)
			self._replace(worker)
			raise ExpressionSandboxError(
				f"the sandbox process evaluating it died ({exc}); the usual cause is the "
				f"{format_bytes(self.limits.memory_bytes)} memory limit",
				source=source,
			) from None
		except BaseException:
			# Interrupted mid-request (KeyboardInterrupt, a signal handler): a late reply would
			# reach the next caller, so this sandbox cannot be reused.
			_log_replaced(worker=worker, reason="interrupted", source=source)
			self._replace(worker)
			raise
		if reply[0] == "memory":
			_log_replaced(worker=worker, reason="ran out of memory", source=source)
			self._replace(worker)
			raise ExpressionSandboxError(
				f"it ran out of memory (the limit is {format_bytes(self.limits.memory_bytes)})", source=source
			)
		self._release(worker)
		return reply

	def _acquire(self, source: str | None) -> _Worker:
		deadline = time.monotonic() + self.limits.acquire_timeout
		with self._cond:
			while True:
				if self._closed:
					raise ExpressionSandboxError("the expression sandbox is shut down", source=source)
				if self._idle:
					return self._idle.pop()
				if self._alive < self.limits.pool_size:
					self._alive += 1
					break
				remaining = deadline - time.monotonic()
				if remaining <= 0:
					raise ExpressionSandboxError(
						f"no sandbox process became free within {self.limits.acquire_timeout!r} s",
						source=source,
					)
				self._cond.wait(remaining)
		try:
			return _Worker(self._settings)
		except BaseException:
			with self._cond:
				self._alive -= 1
				self._cond.notify()
			raise

	def _release(self, worker: _Worker) -> None:
		with self._cond:
			if not self._closed:
				self._idle.append(worker)
				self._cond.notify()
				return
			self._alive -= 1
		worker.close()

	def _replace(self, worker: _Worker) -> None:
		# Start the successor before returning so it boots while the caller reports the error.
		worker.kill()
		with self._cond:
			if self._closed:
				self._alive -= 1
				return
		try:
			successor = _Worker(self._settings)
		except BaseException:
			with self._cond:
				self._alive -= 1
				self._cond.notify()
			raise
		self._release(successor)

	def close(self) -> None:
		"""Stop idle processes now and busy ones when they are released."""
		with self._cond:
			self._closed = True
			idle, self._idle = self._idle, []
			self._alive -= len(idle)
			self._cond.notify_all()
		for worker in idle:
			worker.close()


_pool: SandboxPool | None = None
_pool_lock = threading.Lock()


def get_pool() -> SandboxPool:
	"""The process's sandbox pool, created on first use (and again after a fork)."""
	global _pool
	pool = _pool
	pid = os.getpid()
	if pool is not None and pool.pid == pid:
		return pool
	with _pool_lock:
		if _pool is None or _pool.pid != pid:
			# After a fork the inherited pool's processes and pipes belong to the parent.
			_pool = SandboxPool(current_limits())
		return _pool


def shutdown() -> None:
	"""Stop the sandbox processes; the next evaluation starts a fresh pool."""
	global _pool
	with _pool_lock:
		pool, _pool = _pool, None
	if pool is not None and pool.pid == os.getpid():
		pool.close()


_SANDBOX_FIELDS = (
	"memory_bytes",
	"cpu_seconds",
	"pool_size",
	"startup_timeout",
	"acquire_timeout",
	"child_cache_size",
)


def _restart_on_change(old: Limits, new: Limits) -> None:
	if any(getattr(old, name) != getattr(new, name) for name in _SANDBOX_FIELDS):
		shutdown()


on_limits_change(_restart_on_change)
atexit.register(shutdown)
