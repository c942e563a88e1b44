"""Constants, errors and helpers shared by the core's modules."""

from __future__ import annotations

import hashlib

from workflows.dsl import RetryPolicy
from workflows.engine.status import RunStatus

__all__ = ["ROOT", "STATE_VERSION", "TERMINAL", "IllegalRetry", "Stale", "backoff"]

ROOT = "root"
STATE_VERSION = 1


class Stale(Exception):
	"""The happening refers to a step attempt that is no longer current (a redelivery): ignore it."""


class IllegalRetry(Exception):
	"""Only a failed run can be retried from its failed steps."""

	def __init__(self, status: RunStatus) -> None:
		self.status = status
		super().__init__(f"Cannot retry: the run is {status.value}; only failed runs can be retried.")


TERMINAL = frozenset(
	{
		RunStatus.SUCCEEDED,
		RunStatus.FAILED,
		RunStatus.CANCELLED,
		RunStatus.COMPENSATED,
		RunStatus.COMPENSATION_FAILED,
	}
)


def backoff(policy: RetryPolicy, attempt: int, key: str) -> float:
	"""Delay before ``attempt + 1``: exponential (fixed when the coefficient is 1), capped, with
	deterministic jitter of up to ±20% derived from the step key, so replays agree."""
	base = policy.initial_interval_seconds * policy.backoff_coefficient ** (attempt - 1)
	base = min(base, policy.max_interval_seconds)
	digest = hashlib.sha256(f"{key}#{attempt}".encode()).digest()
	fraction = int.from_bytes(digest[:4], "big") / 0xFFFFFFFF  # 0..1
	return max(0.0, min(base * (0.8 + 0.4 * fraction), policy.max_interval_seconds))
