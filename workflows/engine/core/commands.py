"""What the scheduling core asks the runtime to do, and the outcome of one application."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workflows.engine.status import RunStatus, StepStatus

__all__ = [
	"CancelChild",
	"CancelStep",
	"CancelTimers",
	"CloseApproval",
	"Command",
	"Dispatch",
	"Emit",
	"EscalateApproval",
	"Finish",
	"RecordStep",
	"RequestApproval",
	"StartChild",
	"StartTimer",
	"Subscribe",
	"Transition",
	"Unsubscribe",
]


@dataclass(frozen=True, slots=True)
class Dispatch:
	"""Send a task step (or a compensation) to a worker queue."""

	key: str
	node_id: str
	attempt: int
	connector: str
	action: str
	connection: str | None
	input: Any
	queue: str
	timeout: float
	idempotency_key: str
	output_template: Any = None
	compensation: bool = False


@dataclass(frozen=True, slots=True)
class RecordStep:
	"""Persist the state of one step (node activation and attempt)."""

	key: str
	node_id: str
	node_type: str
	frame: str
	status: StepStatus
	attempt: int = 1
	input: Any = None
	output: Any = None
	error: dict[str, Any] | None = None
	new: bool = False
	"""The first record of this step attempt: no row for it exists yet (none is looked up)."""


@dataclass(frozen=True, slots=True)
class StartTimer:
	"""Fire :class:`TimerFired` (key, purpose) at ``fire_at`` (seconds since the epoch)."""

	key: str
	purpose: str
	fire_at: float


@dataclass(frozen=True, slots=True)
class CancelTimers:
	"""Drop the timers of a step."""

	key: str


@dataclass(frozen=True, slots=True)
class Subscribe:
	"""Deliver the next event of ``event_type`` whose correlation equals ``correlation``."""

	key: str
	event_type: str
	correlation: Any


@dataclass(frozen=True, slots=True)
class Unsubscribe:
	"""Drop a step's event subscription."""

	key: str


@dataclass(frozen=True, slots=True)
class RequestApproval:
	"""Open a human task."""

	key: str
	node_id: str
	title: str
	instructions: Any
	assignees: tuple[str, ...]
	role: str | None
	form_schema: dict[str, Any]
	deadline_at: float | None


@dataclass(frozen=True, slots=True)
class EscalateApproval:
	"""Hand an open approval to other people."""

	key: str
	to_role: str | None
	to_assignees: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CloseApproval:
	"""The approval is decided, timed out or cancelled."""

	key: str
	outcome: str


@dataclass(frozen=True, slots=True)
class StartChild:
	"""Start a sub-workflow run."""

	key: str
	workflow: str
	version: int | str
	input: Any
	wait: bool


@dataclass(frozen=True, slots=True)
class CancelChild:
	"""Cancel a sub-workflow run."""

	key: str


@dataclass(frozen=True, slots=True)
class CancelStep:
	"""Ask the worker executing a step to stop."""

	key: str
	attempt: int


@dataclass(frozen=True, slots=True)
class Emit:
	"""Append a RunEvent (published live)."""

	type: str
	data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Finish:
	"""The run reached a terminal status."""

	status: RunStatus
	output: Any = None
	error: dict[str, Any] | None = None


Command = (
	Dispatch
	| RecordStep
	| StartTimer
	| CancelTimers
	| Subscribe
	| Unsubscribe
	| RequestApproval
	| EscalateApproval
	| CloseApproval
	| StartChild
	| CancelChild
	| CancelStep
	| Emit
	| Finish
)


@dataclass(frozen=True, slots=True)
class Transition:
	"""The outcome of applying one happening."""

	state: dict[str, Any]
	commands: list[Command]
	status: RunStatus
