"""``compute.fibonacci``: a deliberately CPU-bound action, for demos and the CPU-queue benchmark.

Naive recursive Fibonacci is the point: it keeps one core busy for a predictable time without
touching memory or I/O. On the reference machine (CPython 3.11) ``n=25`` takes about 10 ms,
each step of ``n`` about 1.6 times the one before, ``n=32`` about 0.3 s.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from connectors.sdk import ActionContext, Connector

__all__ = ["FibonacciInput", "FibonacciOutput", "connector", "fibonacci", "naive_fibonacci"]

MAX_N = 32

connector = Connector(
	"compute",
	"Compute",
	"CPU-bound demonstration actions; they run on the engine's CPU queue.",
	"1.0.0",
)


class FibonacciInput(BaseModel):
	"""Parameters of ``compute.fibonacci``."""

	model_config = ConfigDict(extra="forbid", title="Fibonacci input")

	n: int = Field(
		ge=0,
		le=MAX_N,
		description=f"Which Fibonacci number to compute (0 to {MAX_N}); n=25 keeps a core busy for about 10 ms.",
	)


class FibonacciOutput(BaseModel):
	"""Result of ``compute.fibonacci``."""

	model_config = ConfigDict(extra="forbid", title="Fibonacci output")

	n: int = Field(description="The n that was asked for.")
	value: int = Field(description="The n-th Fibonacci number (fib(0) = 0, fib(1) = 1).")


def naive_fibonacci(n: int) -> int:
	"""The n-th Fibonacci number by naive recursion: exponential time on purpose."""
	return n if n < 2 else naive_fibonacci(n - 1) + naive_fibonacci(n - 2)


@connector.action(
	name="fibonacci",
	title="Fibonacci (CPU demo)",
	description="Computes a Fibonacci number by naive recursion, to keep a CPU busy for a predictable time.",
	input=FibonacciInput,
	output=FibonacciOutput,
	cpu_bound=True,
	idempotent=True,
)
async def fibonacci(ctx: ActionContext, params: FibonacciInput) -> FibonacciOutput:
	"""Compute on the event loop's thread: a CPU-bound action owns its worker (``steps.cpu``)."""
	ctx.cancel.raise_if_cancelled()
	return FibonacciOutput(n=params.n, value=naive_fibonacci(params.n))
