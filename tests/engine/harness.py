"""An in-memory driver for the pure core: carries out its commands with a fake clock.

What ``advance`` and the Celery tasks do against the database, this does in dicts, so
engine semantics are tested exhaustively without a database or a broker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from workflows.dsl import validate_definition
from workflows.engine.core import (
	ApprovalDecided,
	Cancel,
	CancelChild,
	CancelStep,
	CancelTimers,
	ChildFinished,
	CloseApproval,
	Dispatch,
	Emit,
	Engine,
	EscalateApproval,
	EventReceived,
	Finish,
	Happening,
	RecordStep,
	RequestApproval,
	RetryFailed,
	Stale,
	Start,
	StartChild,
	StartTimer,
	StepError,
	StepFailed,
	StepSucceeded,
	Subscribe,
	TimerFired,
	Unsubscribe,
)
from workflows.engine.status import RunStatus, StepStatus

_UNDER_WAY = (StepStatus.SCHEDULED, StepStatus.RUNNING, StepStatus.WAITING)

Action = Callable[[Any, int], Any]


class Failure(Exception):
	"""Raised by a fake action to fail its step with ``error``."""

	def __init__(self, error: StepError) -> None:
		super().__init__(error.message)
		self.error = error


def fail_action(inp: Any, attempt: int) -> Any:
	raise Failure(
		StepError(inp.get("code", "boom"), inp.get("message", "failed"), bool(inp.get("retryable", False)))
	)


DEFAULT_ACTIONS: dict[str, Action] = {
	"noop.noop": lambda inp, attempt: inp.get("value", {}) if isinstance(inp, dict) else {},
	"test.echo": lambda inp, attempt: inp,
	"fail.fail": fail_action,
}


def definition(nodes: list[dict[str, Any]], edges: list[Any], **extra: Any) -> dict[str, Any]:
	"""A definition from nodes and edges given as dicts or ``(source, target[, handle])`` tuples."""
	edge_dicts = []
	for edge in edges:
		if isinstance(edge, dict):
			edge_dicts.append(edge)
		else:
			source, target, *rest = edge
			item: dict[str, Any] = {"source": source, "target": target}
			if rest:
				item["source_handle"] = rest[0]
			edge_dicts.append(item)
	return {"schema_version": "1.0", "nodes": nodes, "edges": edge_dicts, **extra}


def task(node_id: str, action: str = "noop.noop", **config: Any) -> dict[str, Any]:
	"""A task node calling ``connector.action``."""
	connector, name = action.split(".")
	return {"id": node_id, "type": "task", "config": {"connector": connector, "action": name, **config}}


def node(node_id: str, type_: str, **config: Any) -> dict[str, Any]:
	"""Any node."""
	return {"id": node_id, "type": type_, "config": config}


START = {"id": "start", "type": "start"}
END = {"id": "end", "type": "end"}


def linear(*middle: dict[str, Any], **extra: Any) -> dict[str, Any]:
	"""start -> each of ``middle`` in order -> end (``extra`` adds top-level fields)."""
	ids = ["start", *[n["id"] for n in middle], "end"]
	return definition([START, *middle, END], list(zip(ids, ids[1:], strict=False)), **extra)


@dataclass
class Sim:
	"""One run driven by hand or to completion."""

	doc: dict[str, Any]
	actions: dict[str, Action] = field(default_factory=dict)
	now: float = 1_000.0
	state: dict[str, Any] | None = None
	queue: list[Dispatch] = field(default_factory=list)
	timers: dict[tuple[str, str], float] = field(default_factory=dict)
	subscriptions: dict[str, Subscribe] = field(default_factory=dict)
	approvals: dict[str, RequestApproval] = field(default_factory=dict)
	escalations: list[EscalateApproval] = field(default_factory=list)
	children: dict[str, StartChild] = field(default_factory=dict)
	cancelled_steps: list[str] = field(default_factory=list)
	events: list[Emit] = field(default_factory=list)
	steps: dict[str, RecordStep] = field(default_factory=dict)
	dispatched: list[Dispatch] = field(default_factory=list)
	finished: Finish | None = None
	history: list[tuple[float, Happening]] = field(default_factory=list)
	status: RunStatus = RunStatus.PENDING
	undone: list[str] = field(default_factory=list)
	ended: dict[tuple[str, int], StepStatus] = field(default_factory=dict)
	recorded: set[tuple[str, int]] = field(default_factory=set)

	def __post_init__(self) -> None:
		result = validate_definition(self.doc)
		assert result.ok, [e.to_dict() for e in result.errors]
		assert result.definition is not None
		self.engine = Engine(result.definition)
		self.actions = {**DEFAULT_ACTIONS, **self.actions}

	def apply(self, happening: Happening) -> bool:
		"""Apply one happening; False when the core called it stale."""
		try:
			transition = self.engine.apply(self.state, happening, now=self.now)
		except Stale:
			return False
		self.history.append((self.now, happening))
		if isinstance(happening, RetryFailed):
			self.finished = None  # a retried run finishes again
		self.state = transition.state
		self.status = transition.status
		for command in transition.commands:
			self.carry_out(command)
		return True

	def carry_out(self, command: Any) -> None:
		match command:
			case Dispatch():
				self.queue.append(command)
				self.dispatched.append(command)
			case RecordStep():
				# A step attempt that finished is never started again (a retried run does a step
				# again as a new attempt, or in new frames); only a map, loop or join resumes.
				ended = self.ended.get((command.key, command.attempt))
				assert (
					ended is None
					or command.status not in _UNDER_WAY
					or command.node_type in ("map", "loop", "join")
				), f"{command.key} attempt {command.attempt} is {command.status} again after it {ended}"
				if command.status in (StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.CANCELLED):
					self.ended[(command.key, command.attempt)] = command.status
				# A record marked new is the first of its attempt (the runtime then looks no row up);
				# every other record but a compensation's follows one.
				seen = (command.key, command.attempt) in self.recorded
				assert command.new != seen or command.node_type == "compensation", (
					f"{command.key} attempt {command.attempt}: new={command.new} but recorded before: {seen}"
				)
				self.recorded.add((command.key, command.attempt))
				self.steps[command.key] = command
			case StartTimer():
				self.timers[(command.key, command.purpose)] = command.fire_at
			case CancelTimers():
				for timer in [t for t in self.timers if t[0] == command.key]:
					del self.timers[timer]
			case Subscribe():
				self.subscriptions[command.key] = command
			case Unsubscribe():
				self.subscriptions.pop(command.key, None)
			case RequestApproval():
				self.approvals[command.key] = command
			case EscalateApproval():
				self.escalations.append(command)
			case CloseApproval():
				self.approvals.pop(command.key, None)
			case StartChild():
				self.children[command.key] = command
			case CancelChild():
				self.children.pop(command.key, None)
			case CancelStep():
				self.cancelled_steps.append(command.key)
				self.queue = [d for d in self.queue if d.key != command.key]
			case Emit():
				self.events.append(command)
			case Finish():
				assert self.finished is None, "a run finishes once"
				self.finished = command
			case _:  # pragma: no cover
				raise AssertionError(command)

	def start(self, input_: Any = None, meta: dict[str, Any] | None = None) -> Sim:
		self.apply(Start(input_ if input_ is not None else {}, meta or {"run_id": "r1"}))
		return self

	def work_one(self) -> Dispatch:
		dispatch = self.queue.pop(0)
		action = self.actions[f"{dispatch.connector}.{dispatch.action}"]
		try:
			output = action(dispatch.input, dispatch.attempt)
		except Failure as failure:
			self.apply(StepFailed(dispatch.key, dispatch.attempt, failure.error))
		else:
			self.apply(StepSucceeded(dispatch.key, dispatch.attempt, output))
		return dispatch

	def work(self) -> Sim:
		while self.queue:
			self.work_one()
		return self

	def tick(self, seconds: float = 0) -> Sim:
		"""Advance the clock, firing due timers in order, working the queue as it fills."""
		target = self.now + seconds
		while True:
			self.work()
			due = sorted((at, key) for key, at in self.timers.items() if at <= target)
			if not due:
				break
			at, (key, purpose) = due[0]
			del self.timers[(key, purpose)]
			self.now = max(self.now, at)
			self.apply(TimerFired(key, purpose))
		self.now = target
		return self

	def run(self, limit: float = 10_000_000) -> Sim:
		"""Work and fire timers until the run finishes or nothing is left to do."""
		while self.finished is None and (self.queue or self.timers):
			self.work()
			if self.finished is None and self.timers:
				next_at = min(self.timers.values())
				if next_at - self.now > limit:
					break
				self.tick(max(0.0, next_at - self.now))
		return self

	def event(self, key: str, payload: Any) -> bool:
		return self.apply(EventReceived(key, payload))

	def decide(self, key: str, decision: Literal["approved", "rejected"], **kw: Any) -> bool:
		return self.apply(ApprovalDecided(key, decision, kw.pop("by", "alice"), **kw))

	def child_done(
		self, key: str, *, succeeded: bool = True, output: Any = None, error: StepError | None = None
	) -> bool:
		return self.apply(ChildFinished(key, succeeded, output, error))

	def cancel(self, compensate: bool = False) -> bool:
		return self.apply(Cancel(compensate))

	def event_types(self) -> list[str]:
		return [e.type for e in self.events]

	def output_of(self, key: str) -> Any:
		return self.steps[key].output


def replay(doc: dict[str, Any], history: list[tuple[float, Happening]]) -> dict[str, Any] | None:
	"""Re-apply recorded happenings through a fresh core; the final state must come out equal."""
	sim = Sim(doc)
	for at, happening in history:
		sim.now = at
		transition = sim.engine.apply(sim.state, happening, now=at)
		sim.state = transition.state
	return sim.state
