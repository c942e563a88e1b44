"""The scheduling core for one definition: build it once per published version and reuse it."""

from __future__ import annotations

import json
from typing import Any

from workflows.dsl import Definition
from workflows.engine.core.commands import Transition
from workflows.engine.core.common import STATE_VERSION
from workflows.engine.core.graph import Level, prepare
from workflows.engine.core.happenings import Happening, Start
from workflows.engine.core.work import Work
from workflows.engine.status import RunStatus, StepStatus

__all__ = ["Engine"]


class Engine:
	"""The scheduling core for one definition. Build it once per published version and reuse it."""

	def __init__(self, definition: Definition, *, expression_timeout: float | None = None) -> None:
		self.definition = definition
		self.levels: dict[str, Level] = {}
		prepare(definition.nodes, definition.edges, "", self.levels)
		self.expression_timeout = expression_timeout
		self.compensable = {
			node.id
			for level in self.levels.values()
			for node in level.nodes.values()
			if node.type == "task" and node.config.compensation is not None
		}

	# -- entry point --------------------------------------------------------------------------

	def apply(self, state: dict[str, Any] | None, happening: Happening, *, now: float) -> Transition:
		"""Apply one happening to a run's state.

		Raises:
			IllegalTransition: a lifecycle request the run's status does not allow.
			Stale: the happening is a duplicate or concerns a superseded attempt; ignore it.
		"""
		if isinstance(happening, Start):
			assert state is None, "a run starts once"
			work = Work(self, _new_state(happening), now)
			work.start(happening)
		else:
			assert state is not None, "only Start may create a state"
			assert state.get("v") == STATE_VERSION, "unknown state version"
			# A state is JSON (it is stored as JSON between transitions): copying it through
			# the C JSON codec is about twice as fast as deepcopy and gives the same values.
			work = Work(self, json.loads(json.dumps(state)), now)
			work.handle(happening)
		work.settle()
		status = RunStatus(work.state["status"])
		self._check_invariants(work.state)
		return Transition(work.state, work.commands, status)

	def _check_invariants(self, state: dict[str, Any]) -> None:
		status = RunStatus(state["status"])
		if status in (
			RunStatus.SUCCEEDED,
			RunStatus.CANCELLED,
			RunStatus.COMPENSATED,
			RunStatus.COMPENSATION_FAILED,
		):
			active = [
				k
				for f in state["frames"].values()
				for k, n in f["nodes"].items()
				if n["status"] in (StepStatus.RUNNING, StepStatus.WAITING, StepStatus.SCHEDULED)
			]
			assert not active, f"a finished run still has active steps: {active}"

	# -- helpers used by _Work --------------------------------------------------------------------

	def level_of(self, frame: dict[str, Any]) -> Level:
		return self.levels[frame["graph"]]


def _new_state(start: Start) -> dict[str, Any]:
	return {
		"v": STATE_VERSION,
		"status": RunStatus.PENDING.value,
		"input": start.input,
		"meta": start.meta,
		"frames": {},
		"seq": 0,
		"completed": [],
		"held": [],
		"compensation": None,
		"output": None,
		"error": None,
	}
