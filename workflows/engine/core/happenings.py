"""What can happen to a run: the inputs of the scheduling core."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
	"ApprovalDecided",
	"Cancel",
	"ChildFinished",
	"EventReceived",
	"Happening",
	"Pause",
	"Resume",
	"RetryFailed",
	"Start",
	"StepError",
	"StepFailed",
	"StepSucceeded",
	"TimerFired",
]


@dataclass(frozen=True, slots=True)
class StepError:
	"""Why a step failed: a stable ``code``, a message for people, and whether a retry may help."""

	code: str
	message: str
	retryable: bool = False
	details: dict[str, Any] | None = None

	def as_dict(self) -> dict[str, Any]:
		"""JSON-ready form (stored on steps and events)."""
		data: dict[str, Any] = {"code": self.code, "message": self.message, "retryable": self.retryable}
		if self.details:
			data["details"] = self.details
		return data


@dataclass(frozen=True, slots=True)
class Start:
	"""Begin the run with ``input``; ``meta`` (run id, workflow, version, ...) is exposed as ``.run``."""

	input: Any
	meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StepSucceeded:
	"""A dispatched step (attempt) finished with ``output``."""

	key: str
	attempt: int
	output: Any


@dataclass(frozen=True, slots=True)
class StepFailed:
	"""A dispatched step (attempt) failed."""

	key: str
	attempt: int
	error: StepError


@dataclass(frozen=True, slots=True)
class TimerFired:
	"""A timer started by the core is due."""

	key: str
	purpose: str


@dataclass(frozen=True, slots=True)
class EventReceived:
	"""An event matched the subscription of a wait-for-event step."""

	key: str
	payload: Any


@dataclass(frozen=True, slots=True)
class ApprovalDecided:
	"""Someone approved or rejected an approval step."""

	key: str
	decision: Literal["approved", "rejected"]
	by: str
	comment: str = ""
	data: Any = None


@dataclass(frozen=True, slots=True)
class ChildFinished:
	"""A sub-workflow run finished."""

	key: str
	succeeded: bool
	output: Any = None
	error: StepError | None = None


@dataclass(frozen=True, slots=True)
class Cancel:
	"""Stop the run; with ``compensate`` undo its completed steps first."""

	compensate: bool = False
	reason: str = ""


@dataclass(frozen=True, slots=True)
class Pause:
	"""Dispatch nothing new until resumed."""


@dataclass(frozen=True, slots=True)
class Resume:
	"""Undo a pause: dispatch what was held."""


@dataclass(frozen=True, slots=True)
class RetryFailed:
	"""Retry a failed run from its failed steps, keeping every earlier output."""


Happening = (
	Start
	| StepSucceeded
	| StepFailed
	| TimerFired
	| EventReceived
	| ApprovalDecided
	| ChildFinished
	| Cancel
	| Pause
	| Resume
	| RetryFailed
)
