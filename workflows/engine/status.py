"""Run and step statuses, and the run lifecycle: every allowed transition in one table.

    pending -> running <-> waiting -> succeeded | failed | cancelled
    running/waiting <-> paused
    failed (after completed compensable steps) -> compensating -> compensated | compensation_failed
    failed -> running (retry from the failed step)

Only :func:`check_run_transition` decides whether a change is legal; the engine asserts it
before every write of a run's status.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
	"ACTIVE_RUN_STATUSES",
	"RUN_TRANSITIONS",
	"TERMINAL_RUN_STATUSES",
	"TERMINAL_STEP_STATUSES",
	"IllegalTransition",
	"RunStatus",
	"StepStatus",
	"check_run_transition",
]


class RunStatus(StrEnum):
	"""Where a run is in its lifecycle."""

	PENDING = "pending"
	"""Created; waiting for a concurrency slot (or about to start)."""
	RUNNING = "running"
	"""At least one step is dispatched or executing."""
	WAITING = "waiting"
	"""Nothing executing: only timers, events, approvals or child runs outstanding."""
	PAUSED = "paused"
	"""No new step is dispatched until resumed; steps already executing finish."""
	COMPENSATING = "compensating"
	"""Undoing completed steps in reverse completion order."""
	SUCCEEDED = "succeeded"
	FAILED = "failed"
	CANCELLED = "cancelled"
	COMPENSATED = "compensated"
	COMPENSATION_FAILED = "compensation_failed"


TERMINAL_RUN_STATUSES = frozenset(
	{
		RunStatus.SUCCEEDED,
		RunStatus.FAILED,
		RunStatus.CANCELLED,
		RunStatus.COMPENSATED,
		RunStatus.COMPENSATION_FAILED,
	}
)
ACTIVE_RUN_STATUSES = frozenset(
	{RunStatus.RUNNING, RunStatus.WAITING, RunStatus.PAUSED, RunStatus.COMPENSATING}
)

_R = RunStatus
RUN_TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
	_R.PENDING: frozenset({_R.RUNNING, _R.WAITING, _R.SUCCEEDED, _R.FAILED, _R.CANCELLED, _R.PAUSED}),
	_R.RUNNING: frozenset({_R.WAITING, _R.PAUSED, _R.SUCCEEDED, _R.FAILED, _R.CANCELLED, _R.COMPENSATING}),
	_R.WAITING: frozenset({_R.RUNNING, _R.PAUSED, _R.SUCCEEDED, _R.FAILED, _R.CANCELLED, _R.COMPENSATING}),
	_R.PAUSED: frozenset({_R.RUNNING, _R.WAITING, _R.SUCCEEDED, _R.FAILED, _R.CANCELLED, _R.COMPENSATING}),
	_R.COMPENSATING: frozenset({_R.COMPENSATED, _R.COMPENSATION_FAILED}),
	_R.FAILED: frozenset({_R.RUNNING, _R.WAITING}),
	_R.SUCCEEDED: frozenset(),
	_R.CANCELLED: frozenset(),
	_R.COMPENSATED: frozenset(),
	_R.COMPENSATION_FAILED: frozenset(),
}


class IllegalTransition(Exception):
	"""A lifecycle change that the current status does not allow."""

	def __init__(self, current: RunStatus | str, target: RunStatus | str, action: str | None = None) -> None:
		self.current = RunStatus(current)
		self.target = RunStatus(target)
		what = action or f"move to {self.target.value}"
		super().__init__(f"Cannot {what}: the run is {self.current.value}.")


def check_run_transition(
	current: RunStatus | str, target: RunStatus | str, *, action: str | None = None
) -> None:
	"""Raise :class:`IllegalTransition` unless ``current -> target`` is in the table (same status is fine)."""
	current, target = RunStatus(current), RunStatus(target)
	if current != target and target not in RUN_TRANSITIONS[current]:
		raise IllegalTransition(current, target, action)


class StepStatus(StrEnum):
	"""Where one node activation (one StepRun) is."""

	SCHEDULED = "scheduled"
	"""Dispatched to a worker queue (tasks) or held while the run is paused."""
	RUNNING = "running"
	"""A worker holds its lease and executes it."""
	WAITING = "waiting"
	"""A timer, event, approval, child run, retry backoff or join arrival is outstanding."""
	SUCCEEDED = "succeeded"
	FAILED = "failed"
	CANCELLED = "cancelled"
	COMPENSATING = "compensating"
	COMPENSATED = "compensated"
	COMPENSATION_FAILED = "compensation_failed"


TERMINAL_STEP_STATUSES = frozenset(
	{
		StepStatus.SUCCEEDED,
		StepStatus.FAILED,
		StepStatus.CANCELLED,
		StepStatus.COMPENSATED,
		StepStatus.COMPENSATION_FAILED,
	}
)
