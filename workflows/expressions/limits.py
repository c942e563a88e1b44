"""The limits every expression evaluation runs under, in one place.

Defaults suit a worker evaluating user-written mappings: a second of wall time, a mebibyte of
output, a gibibyte of address space per sandbox process. :func:`configure` changes them for
the whole process (settings or a test fixture call it); a change that affects the sandbox
processes themselves restarts the pool so the next evaluation runs under the new limits.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Limits", "configure", "current_limits", "on_limits_change"]


def _default_pool_size() -> int:
	return max(2, min(4, os.cpu_count() or 1))


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
	"""Bounds on compiling and evaluating expressions.

	Attributes:
		timeout: Wall-clock seconds one evaluation may take before its sandbox process is killed.
		max_output_bytes: Largest result, measured as compact UTF-8 JSON.
		max_source_length: Longest expression source, in characters.
		memory_bytes: Address-space limit (RLIMIT_AS) of each sandbox process.
		cpu_seconds: CPU seconds one request may use inside a sandbox process before the kernel
			kills it; a backstop for when the parent is gone and cannot enforce ``timeout``.
			Keep it above the longest ``timeout`` any caller passes.
		pool_size: Sandbox processes kept alive; evaluations beyond that wait for a free one.
		startup_timeout: Seconds a new sandbox process may take to report ready.
		acquire_timeout: Seconds an evaluation may wait for a free sandbox process.
		compile_cache_size: Compiled expressions kept in the parent's LRU cache.
		child_cache_size: Compiled jq programs kept in each sandbox process.
	"""

	timeout: float = 1.0
	max_output_bytes: int = 1 << 20
	max_source_length: int = 4096
	memory_bytes: int = 1 << 30
	cpu_seconds: int = 30
	pool_size: int = dataclasses.field(default_factory=_default_pool_size)
	startup_timeout: float = 20.0
	acquire_timeout: float = 30.0
	compile_cache_size: int = 2048
	child_cache_size: int = 512

	def __post_init__(self) -> None:
		for name in ("timeout", "startup_timeout", "acquire_timeout"):
			if not getattr(self, name) > 0:
				raise ValueError(f"Limits.{name} must be positive")
		for name in (
			"max_output_bytes",
			"max_source_length",
			"memory_bytes",
			"cpu_seconds",
			"pool_size",
			"compile_cache_size",
			"child_cache_size",
		):
			if getattr(self, name) < 1:
				raise ValueError(f"Limits.{name} must be at least 1")


_lock = threading.Lock()
_limits = Limits()
_listeners: list[Callable[[Limits, Limits], None]] = []


def current_limits() -> Limits:
	"""The limits in force now."""
	return _limits


def on_limits_change(listener: Callable[[Limits, Limits], None]) -> None:
	"""Register ``listener(old, new)``, called after :func:`configure` changes the limits."""
	_listeners.append(listener)


def configure(
	limits: Limits | None = None,
	*,
	timeout: float | None = None,
	max_output_bytes: int | None = None,
	max_source_length: int | None = None,
	memory_bytes: int | None = None,
	cpu_seconds: int | None = None,
	pool_size: int | None = None,
	startup_timeout: float | None = None,
	acquire_timeout: float | None = None,
	compile_cache_size: int | None = None,
	child_cache_size: int | None = None,
) -> Limits:
	"""Change the process-wide limits.

	Args:
		limits: Start from these limits instead of the current ones (``configure(Limits())``
			restores the defaults).
		timeout: See :class:`Limits`; None leaves a field unchanged.
		max_output_bytes: See :class:`Limits`.
		max_source_length: See :class:`Limits`.
		memory_bytes: See :class:`Limits`.
		cpu_seconds: See :class:`Limits`.
		pool_size: See :class:`Limits`.
		startup_timeout: See :class:`Limits`.
		acquire_timeout: See :class:`Limits`.
		compile_cache_size: See :class:`Limits`.
		child_cache_size: See :class:`Limits`.

	Returns:
		The limits now in force.

	Raises:
		ValueError: A limit is not positive.
	"""
	global _limits
	changes = {
		name: value
		for name, value in (
			("timeout", timeout),
			("max_output_bytes", max_output_bytes),
			("max_source_length", max_source_length),
			("memory_bytes", memory_bytes),
			("cpu_seconds", cpu_seconds),
			("pool_size", pool_size),
			("startup_timeout", startup_timeout),
			("acquire_timeout", acquire_timeout),
			("compile_cache_size", compile_cache_size),
			("child_cache_size", child_cache_size),
		)
		if value is not None
	}
	with _lock:
		old = _limits
		new = dataclasses.replace(limits or old, **changes)
		_limits = new
	if new != old:
		for listener in list(_listeners):
			listener(old, new)
	return new
