"""One application of a happening to a run's state: the node semantics of the scheduling core."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from workflows.dsl import Edge, Node, RetryPolicy, SubWorkflowNode, parse_duration, parse_timestamp
from workflows.engine.core.commands import (
	CancelChild,
	CancelStep,
	CancelTimers,
	CloseApproval,
	Command,
	Dispatch,
	Emit,
	EscalateApproval,
	Finish,
	RecordStep,
	RequestApproval,
	StartChild,
	StartTimer,
	Subscribe,
	Unsubscribe,
)
from workflows.engine.core.common import ROOT, TERMINAL, IllegalRetry, Stale, backoff
from workflows.engine.core.graph import handle_of as _handle
from workflows.engine.core.happenings import (
	ApprovalDecided,
	Cancel,
	ChildFinished,
	EventReceived,
	Happening,
	Pause,
	Resume,
	RetryFailed,
	Start,
	StepError,
	StepFailed,
	StepSucceeded,
	TimerFired,
)
from workflows.engine.status import IllegalTransition, RunStatus, StepStatus, check_run_transition
from workflows.expressions import ExpressionError, compile_expression, compile_template

if TYPE_CHECKING:
	from workflows.engine.core.engine import Engine

__all__ = ["Work"]


class Work:
	"""One application of a happening: mutates a private copy of the state, collects commands."""

	def __init__(self, engine: Engine, state: dict[str, Any], now: float) -> None:
		self.engine = engine
		self.state = state
		self.now = now
		self.commands: list[Command] = []
		self._to_settle: list[str] = []
		# Step attempts begun in this transition: their first record says they are new.
		self.fresh: set[tuple[str, int]] = set()

	# -- small utilities ------------------------------------------------------------------------

	def emit(self, type_: str, **data: Any) -> None:
		self.commands.append(Emit(type_, data))

	def frame(self, frame_id: str) -> dict[str, Any]:
		return self.state["frames"][frame_id]

	def split(self, key: str) -> tuple[str, str]:
		frame_id, _, node_id = key.rpartition(":")
		return frame_id, node_id

	def node_of(self, key: str) -> tuple[dict[str, Any], Node, dict[str, Any]]:
		frame_id, node_id = self.split(key)
		frame = self.state["frames"].get(frame_id)
		if frame is None or node_id not in frame["nodes"]:
			raise Stale(key)
		return frame, self.engine.level_of(frame).nodes[node_id], frame["nodes"][node_id]

	def begun(self, key: str, attempt: int) -> bool:
		"""Whether this is the first record of a step attempt begun in this transition (then no longer)."""
		if (key, attempt) in self.fresh:
			self.fresh.discard((key, attempt))
			return True
		return False

	def record(self, frame: dict[str, Any], node: Node, ns: dict[str, Any], **extra: Any) -> None:
		self.commands.append(
			RecordStep(
				key=ns["key"],
				node_id=node.id,
				node_type=node.type,
				frame=frame["id"],
				status=StepStatus(ns["status"]),
				attempt=ns.get("attempt", 1),
				output=ns.get("output"),
				error=ns.get("error"),
				new=self.begun(ns["key"], ns.get("attempt", 1)),
				**extra,
			)
		)

	# -- expressions ------------------------------------------------------------------------------

	def context(self, frame: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
		"""``.input``, ``.steps`` (this frame's outputs over its ancestors'), ``.item``/``.index``, ``.run``."""
		chain: list[dict[str, Any]] = []
		cursor: dict[str, Any] | None = frame
		while cursor is not None:
			chain.append(cursor)
			cursor = self.state["frames"].get(cursor["parent_frame"]) if cursor["parent_frame"] else None
		steps: dict[str, Any] = {}
		for f in reversed(chain):
			for node_id, ns in f["nodes"].items():
				if ns["status"] in (StepStatus.SUCCEEDED, StepStatus.FAILED):
					steps[node_id] = {"output": ns.get("output"), "status": ns["status"]}
		ctx: dict[str, Any] = {
			"input": self.state["input"],
			"steps": steps,
			"run": self.state["meta"],
			"secrets": {name: f"secret://{name}" for name in self.state["meta"].get("secret_names", [])},
		}
		for f in chain:
			if "item" in f.get("vars", {}):
				ctx.setdefault("item", f["vars"]["item"])
			if "index" in f.get("vars", {}):
				ctx.setdefault("index", f["vars"]["index"])
		if extra:
			ctx.update(extra)
		return ctx

	def evaluate(self, expression: str, frame: dict[str, Any], extra: dict[str, Any] | None = None) -> Any:
		return compile_expression(expression).evaluate(
			self.context(frame, extra), timeout=self.engine.expression_timeout
		)

	def render(self, template: Any, frame: dict[str, Any], extra: dict[str, Any] | None = None) -> Any:
		compiled = compile_template(template)
		if compiled.is_static:
			return copy.deepcopy(template)
		return compiled.evaluate(self.context(frame, extra), timeout=self.engine.expression_timeout)

	# -- start ------------------------------------------------------------------------------------

	def start(self, start: Start) -> None:
		check_run_transition(RunStatus.PENDING, RunStatus.RUNNING)
		self.state["status"] = RunStatus.RUNNING.value
		self.emit("run.started", input=start.input)
		root = self.new_frame(ROOT, graph="", parent_frame=None, parent_key=None, variables={})
		defaults = self.engine.definition.defaults
		if defaults.run_timeout_seconds:
			self.commands.append(
				StartTimer("run", "run_timeout", self.now + float(defaults.run_timeout_seconds))
			)
		self.activate(root, self.engine.levels[""].entry, tags=[])

	@staticmethod
	def frames_of(ns: dict[str, Any]) -> str:
		"""The prefix of the ids of the frames a map or loop step makes: its key, and its attempt after the first."""
		return ns["key"] if ns["attempt"] == 1 else f"{ns['key']}@{ns['attempt']}"

	def new_frame(
		self,
		frame_id: str,
		*,
		graph: str,
		parent_frame: str | None,
		parent_key: str | None,
		variables: dict[str, Any],
	) -> dict[str, Any]:
		frame = {
			"id": frame_id,
			"graph": graph,
			"parent_frame": parent_frame,
			"parent_key": parent_key,
			"vars": variables,
			"nodes": {},
			"status": "running",
			"last": None,
			"ended": None,
			"error": None,
		}
		assert frame_id not in self.state["frames"], f"frame {frame_id} made twice"
		self.state["frames"][frame_id] = frame
		return frame

	# -- activation ---------------------------------------------------------------------------------

	def activate(
		self,
		frame: dict[str, Any],
		node_id: str,
		*,
		tags: list[list[str]],
		came_from: str | None = None,
		attempt: int = 1,
	) -> None:
		"""Run ``node_id`` in ``frame``; ``attempt`` > 1 when a retried run does it again.

		A node done again gets the next attempt, and the frames it makes (a map's items, a
		loop's iterations) carry that attempt in their ids, so no step of the new try has the
		key and attempt of one recorded by an earlier try.
		"""
		level = self.engine.level_of(frame)
		node = level.nodes[node_id]
		key = f"{frame['id']}:{node_id}"
		existing = frame["nodes"].get(node_id)
		if node.type == "join":
			self.arrive_at_join(frame, node, key, tags, came_from)
			return
		assert existing is None, f"{key} activated twice in one frame (the graph is a DAG)"
		self.state["seq"] += 1
		ns: dict[str, Any] = {
			"key": key,
			"status": StepStatus.RUNNING.value,
			"attempt": attempt,
			"tags": tags,
			"seq": self.state["seq"],
		}
		frame["nodes"][node_id] = ns
		self.fresh.add((key, attempt))
		try:
			self.run_node(frame, node, ns, came_from)
		except ExpressionError as exc:
			located = exc.at(node_id=node.id)
			self.fail_node(frame, node, ns, StepError("expression_error", str(located)))

	def run_node(self, frame: dict[str, Any], node: Node, ns: dict[str, Any], came_from: str | None) -> None:
		kind = node.type
		config: Any = node.config
		if kind == "start":
			self.succeed_node(frame, node, ns, self.state["input"])
		elif kind == "set":
			self.succeed_node(frame, node, ns, self.render(config.values, frame))
		elif kind == "switch":
			handle = "default"
			for case in config.cases:
				if self.evaluate(case.condition, frame) not in (False, None):
					handle = case.id
					break
			self.succeed_node(frame, node, ns, {"case": handle}, handle=handle)
		elif kind == "parallel":
			self.succeed_node(frame, node, ns, None, fork=True)
		elif kind == "task":
			self.dispatch_task(frame, node, ns, attempt=ns["attempt"])
		elif kind == "fail":
			message = self.render(config.message, frame)
			error = StepError(config.error_code, message if isinstance(message, str) else str(message))
			ns["status"] = StepStatus.FAILED.value
			ns["error"] = error.as_dict()
			self.record(frame, node, ns)
			self.emit("step.failed", key=ns["key"], node=node.id, error=ns["error"])
			self.frame_failed(frame, ns["error"])
		elif kind == "end":
			output = (
				self.render(config.output, frame)
				if config.output is not None
				else self.last_output(frame, came_from)
			)
			frame["ended"] = node.id
			self.succeed_node(frame, node, ns, output)
		elif kind == "wait":
			self.start_wait(frame, node, ns, config)
		elif kind == "wait_for_event":
			correlation = self.evaluate(config.correlation, frame)
			self.set_waiting(frame, node, ns)
			self.commands.append(Subscribe(ns["key"], config.event_type, correlation))
			if config.timeout_seconds is not None:
				self.commands.append(
					StartTimer(ns["key"], "event_timeout", self.now + float(config.timeout_seconds))
				)
		elif kind == "approval":
			self.open_approval(frame, node, ns, config)
		elif kind == "sub_workflow":
			child_input = self.render(config.input, frame)
			self.commands.append(
				StartChild(ns["key"], config.workflow, config.version, child_input, config.wait)
			)
			if config.wait:
				self.set_waiting(frame, node, ns)
			else:
				self.succeed_node(frame, node, ns, {"started": True})
		elif kind == "map":
			self.start_map(frame, node, ns, config)
		elif kind == "loop":
			self.start_loop(frame, node, ns, config)
		else:  # pragma: no cover - the schema admits no other type
			raise AssertionError(f"unknown node type {kind}")

	def last_output(self, frame: dict[str, Any], came_from: str | None) -> Any:
		if came_from is not None and came_from in frame["nodes"]:
			return frame["nodes"][came_from].get("output")
		return None

	def set_waiting(self, frame: dict[str, Any], node: Node, ns: dict[str, Any]) -> None:
		ns["status"] = StepStatus.WAITING.value
		self.record(frame, node, ns)
		self.emit("step.waiting", key=ns["key"], node=node.id, type=node.type)

	# -- tasks ----------------------------------------------------------------------------------

	def task_timeout(self, node: Node) -> float:
		config: Any = node.config
		value = (
			config.timeout_seconds
			if config.timeout_seconds is not None
			else self.engine.definition.defaults.timeout_seconds
		)
		return float(value)

	def dispatch_task(self, frame: dict[str, Any], node: Node, ns: dict[str, Any], *, attempt: int) -> None:
		config: Any = node.config
		if attempt != ns["attempt"]:
			self.fresh.add((ns["key"], attempt))  # a retry: a new attempt of the step
		ns["attempt"] = attempt
		ns["status"] = StepStatus.SCHEDULED.value
		ns.pop("error", None)
		step_input = self.render(config.input, frame)
		dispatch = Dispatch(
			key=ns["key"],
			node_id=node.id,
			attempt=attempt,
			connector=config.connector,
			action=config.action,
			connection=config.connection,
			input=step_input,
			queue=config.queue,
			timeout=self.task_timeout(node),
			idempotency_key=f"{self.state['meta'].get('run_id', 'run')}:{ns['key']}:{attempt}",
			output_template=config.output,
		)
		self.commands.append(
			RecordStep(
				ns["key"],
				node.id,
				node.type,
				frame["id"],
				StepStatus.SCHEDULED,
				attempt,
				input=step_input,
				new=self.begun(ns["key"], attempt),
			)
		)
		self.emit("step.scheduled", key=ns["key"], node=node.id, attempt=attempt)
		if self.state["status"] == RunStatus.PAUSED:
			self.state["held"].append(ns["key"])
		else:
			self.commands.append(dispatch)

	def safe_dispatch(self, frame: dict[str, Any], node: Node, ns: dict[str, Any], *, attempt: int) -> None:
		"""Dispatch outside an activation (a retry, a resume): an input expression error fails the step."""
		try:
			self.dispatch_task(frame, node, ns, attempt=attempt)
		except ExpressionError as exc:
			self.fail_node(
				frame, node, ns, StepError("expression_error", str(exc.at(node_id=node.id, field="input")))
			)

	def retry_policy(self, node: Node) -> RetryPolicy:
		config: Any = node.config
		return config.retry if config.retry is not None else self.engine.definition.defaults.retry

	# -- waits, approvals -------------------------------------------------------------------------

	def start_wait(self, frame: dict[str, Any], node: Node, ns: dict[str, Any], config: Any) -> None:
		if config.duration is not None:
			seconds = parse_duration(config.duration)
			if seconds is None:
				seconds = self.evaluate(config.duration, frame)
			seconds = float(seconds) if isinstance(seconds, int | float) else parse_duration(str(seconds))
			if seconds is None or seconds < 0:
				raise ExpressionError(
					f"wait duration must be a number of seconds or an ISO-8601 duration, got {seconds!r}",
					source=str(config.duration),
					field="duration",
				)
			fire_at = self.now + seconds
		else:
			fire_at = self.until_timestamp(frame, config.until)
		self.set_waiting(frame, node, ns)
		ns["fire_at"] = fire_at
		self.commands.append(StartTimer(ns["key"], "wait", fire_at))

	def until_timestamp(self, frame: dict[str, Any], until: Any) -> float:
		value = until
		try:
			return parse_timestamp(str(value)).timestamp()
		except ValueError:
			value = self.evaluate(until, frame)
		if isinstance(value, int | float):
			return float(value)
		try:
			return parse_timestamp(str(value)).timestamp()
		except ValueError:
			raise ExpressionError(
				f"wait until must give an ISO-8601 timestamp or epoch seconds, got {value!r}",
				source=str(until),
				field="until",
			) from None

	def open_approval(self, frame: dict[str, Any], node: Node, ns: dict[str, Any], config: Any) -> None:
		deadline = self.now + float(config.deadline_seconds) if config.deadline_seconds is not None else None
		instructions = self.render(config.instructions, frame)
		self.set_waiting(frame, node, ns)
		self.commands.append(
			RequestApproval(
				ns["key"],
				node.id,
				config.title or node.name or node.id,
				instructions,
				tuple(config.assignees),
				config.role,
				dict(config.form_schema),
				deadline,
			)
		)
		self.emit(
			"approval.requested",
			key=ns["key"],
			node=node.id,
			assignees=list(config.assignees),
			role=config.role,
		)
		if config.escalation is not None:
			self.commands.append(
				StartTimer(
					ns["key"], "approval_escalation", self.now + float(config.escalation.after_seconds)
				)
			)
		if deadline is not None:
			self.commands.append(StartTimer(ns["key"], "approval_deadline", deadline))

	# -- map and loop -------------------------------------------------------------------------------

	def start_map(self, frame: dict[str, Any], node: Node, ns: dict[str, Any], config: Any) -> None:
		items = self.evaluate(config.items, frame)
		if not isinstance(items, list):
			raise ExpressionError(
				f"map items must be an array, got {type(items).__name__}", source=config.items, field="items"
			)
		ns.update(
			{
				"status": StepStatus.RUNNING.value,
				"items": items,
				"next": 0,
				"active": 0,
				"results": [None] * len(items),
				"done": 0,
			}
		)
		self.record(frame, node, ns)
		if not items:
			self.finish_map(frame, node, ns)
			return
		self.fill_map(frame, node, ns)

	def fill_map(self, frame: dict[str, Any], node: Node, ns: dict[str, Any]) -> None:
		config: Any = node.config
		level_path = f"{frame['graph']}/{node.id}"
		while ns["next"] < len(ns["items"]) and ns["active"] < config.max_concurrency:
			index = ns["next"]
			ns["next"] += 1
			ns["active"] += 1
			child = self.new_frame(
				f"{self.frames_of(ns)}[{index}]",
				graph=level_path,
				parent_frame=frame["id"],
				parent_key=ns["key"],
				variables={"item": ns["items"][index], "index": index},
			)
			self.activate(child, self.engine.levels[level_path].entry, tags=[])

	def finish_map(self, frame: dict[str, Any], node: Node, ns: dict[str, Any]) -> None:
		config: Any = node.config
		results = ns["results"]
		for key in ("items", "results"):
			ns.pop(key, None)
		try:
			output = (
				self.render(config.result, frame, {"results": results})
				if config.result is not None
				else results
			)
		except ExpressionError as exc:
			self.fail_node(
				frame, node, ns, StepError("expression_error", str(exc.at(node_id=node.id, field="result")))
			)
			return
		self.succeed_node(frame, node, ns, output)

	def start_loop(self, frame: dict[str, Any], node: Node, ns: dict[str, Any], config: Any) -> None:
		ns.update({"status": StepStatus.RUNNING.value, "iteration": 0, "result": None})
		self.record(frame, node, ns)
		if config.mode == "while" and not self.loop_condition(frame, ns, config):
			self.succeed_node(frame, node, ns, None)
			return
		self.start_iteration(frame, node, ns)

	def loop_condition(
		self, frame: dict[str, Any], ns: dict[str, Any], config: Any, body: dict[str, Any] | None = None
	) -> bool:
		extra: dict[str, Any] = {"index": ns["iteration"], "result": ns.get("result")}
		if body is not None:
			# The finished iteration's outputs are visible to the condition (e.g. a poll result).
			inner = self.context(body)["steps"]
			outer = self.context(frame)
			return self.truthy(
				compile_expression(config.condition).evaluate(
					{**outer, **extra, "steps": {**outer["steps"], **inner}},
					timeout=self.engine.expression_timeout,
				)
			)
		return self.truthy(self.evaluate(config.condition, frame, extra))

	@staticmethod
	def truthy(value: Any) -> bool:
		return value not in (False, None)

	def start_iteration(self, frame: dict[str, Any], node: Node, ns: dict[str, Any]) -> None:
		level_path = f"{frame['graph']}/{node.id}"
		index = ns["iteration"]
		child = self.new_frame(
			f"{self.frames_of(ns)}#{index}",
			graph=level_path,
			parent_frame=frame["id"],
			parent_key=ns["key"],
			variables={"index": index},
		)
		self.activate(child, self.engine.levels[level_path].entry, tags=[])

	# -- completion -----------------------------------------------------------------------------

	def succeed_node(
		self,
		frame: dict[str, Any],
		node: Node,
		ns: dict[str, Any],
		output: Any,
		*,
		handle: str = "out",
		fork: bool = False,
	) -> None:
		ns["status"] = StepStatus.SUCCEEDED.value
		ns["output"] = output
		ns["handle"] = handle
		ns.pop("error", None)
		self.state["seq"] += 1
		ns["done_seq"] = self.state["seq"]
		frame["last"] = node.id
		self.record(frame, node, ns)
		self.emit("step.succeeded", key=ns["key"], node=node.id, output=output)
		if node.type == "task" and node.id in self.engine.compensable:
			self.state["completed"].append(ns["key"])
		self.follow(frame, node, ns, handle, fork=fork)

	def follow(
		self, frame: dict[str, Any], node: Node, ns: dict[str, Any], handle: str, *, fork: bool = False
	) -> None:
		level = self.engine.level_of(frame)
		edges = [e for e in level.edges_out[node.id] if _handle(e) == handle]
		taken: list[Edge] = []
		try:
			for edge in edges:
				if edge.condition is None or self.truthy(self.evaluate(edge.condition, frame)):
					taken.append(edge)
					if not fork:
						break
		except ExpressionError as exc:
			located = exc.at(node_id=node.id, field=f"edge condition ({handle})")
			self.frame_failed(frame, StepError("expression_error", str(located)).as_dict())
			return
		tags: list[list[str]] = ns.get("tags", [])
		if fork:
			ns["branches"] = [e.target for e in taken]
		for edge in taken:
			branch_tags = [*tags, [node.id, edge.target]] if fork else tags
			self.activate(frame, edge.target, tags=branch_tags, came_from=node.id)
		self.settle_frame_later(frame)

	def fail_node(self, frame: dict[str, Any], node: Node, ns: dict[str, Any], error: StepError) -> None:
		"""A node failed for good: follow its error edge if it has one, else fail its frame."""
		ns["status"] = StepStatus.FAILED.value
		ns["error"] = error.as_dict()
		self.state["seq"] += 1
		ns["done_seq"] = self.state["seq"]
		self.record(frame, node, ns)
		self.emit("step.failed", key=ns["key"], node=node.id, error=ns["error"])
		level = self.engine.level_of(frame)
		if any(_handle(e) == "error" for e in level.edges_out.get(node.id, [])):
			ns["output"] = {"error": ns["error"]}
			ns["handled"] = True
			frame["last"] = node.id
			self.follow(frame, node, ns, "error")
			return
		self.frame_failed(frame, ns["error"])

	def frame_failed(self, frame: dict[str, Any], error: dict[str, Any]) -> None:
		if frame["status"] != "running":
			return
		frame["status"] = "failed"
		frame["error"] = error
		self.cancel_active(frame, reason="failure")
		self.settle_frame_later(frame)

	def cancel_active(self, frame: dict[str, Any], *, reason: str, only_tag: str | None = None) -> None:
		"""Cancel the frame's active steps (and their sub-frames), optionally only a fork's branches."""
		level = self.engine.level_of(frame)
		for node_id, ns in frame["nodes"].items():
			if ns["status"] not in (StepStatus.RUNNING, StepStatus.WAITING, StepStatus.SCHEDULED):
				continue
			if only_tag is not None and not any(tag[0] == only_tag for tag in ns.get("tags", [])):
				continue
			self.cancel_step(frame, level.nodes[node_id], ns, reason=reason)

	def cancel_step(self, frame: dict[str, Any], node: Node, ns: dict[str, Any], *, reason: str) -> None:
		key = ns["key"]
		previous = ns["status"]
		ns["status"] = StepStatus.CANCELLED.value
		ns["cancel_reason"] = reason
		if node.type == "task":
			if key in self.state["held"]:
				self.state["held"].remove(key)
			elif previous in (StepStatus.RUNNING, StepStatus.SCHEDULED):
				self.commands.append(CancelStep(key, ns.get("attempt", 1)))
			self.commands.append(CancelTimers(key))
		elif node.type in ("wait", "approval"):
			self.commands.append(CancelTimers(key))
			if node.type == "approval":
				self.commands.append(CloseApproval(key, "cancelled"))
		elif node.type == "wait_for_event":
			self.commands.append(Unsubscribe(key))
			self.commands.append(CancelTimers(key))
		elif node.type == "sub_workflow":
			self.commands.append(CancelChild(key))
		elif node.type in ("map", "loop"):
			self.cancel_children(key, reason=reason)
		self.record(frame, node, ns)
		self.emit("step.cancelled", key=key, node=node.id, reason=reason)

	def cancel_children(self, key: str, *, reason: str) -> None:
		"""Cancel the still-running body frames of a map or loop step."""
		for child in list(self.state["frames"].values()):
			if child["parent_key"] == key and child["status"] == "running":
				child["status"] = "cancelled"
				self.cancel_active(child, reason=reason)

	# -- joins ------------------------------------------------------------------------------------

	def arrive_at_join(
		self, frame: dict[str, Any], node: Node, key: str, tags: list[list[str]], came_from: str | None
	) -> None:
		level = self.engine.level_of(frame)
		fork_id = level.forks_of.get(node.id)
		ns = frame["nodes"].get(node.id)
		if ns is None:
			self.state["seq"] += 1
			ns = {
				"key": key,
				"status": StepStatus.WAITING.value,
				"attempt": 1,
				"arrived": [],
				"tags": [],
				"seq": self.state["seq"],
			}
			frame["nodes"][node.id] = ns
			self.fresh.add((key, 1))
			self.record(frame, node, ns)
		if ns["status"] != StepStatus.WAITING:
			return  # a late branch after an "any" or "n_of_m" join fired: dropped
		branch = next((tag[1] for tag in reversed(tags) if tag[0] == fork_id), came_from or "?")
		outer = [tag for tag in tags if tag[0] != fork_id]
		if branch not in ns["arrived"]:
			ns["arrived"].append(branch)
			ns["from"] = [*ns.get("from", []), came_from]
		ns["tags"] = outer
		self.maybe_fire_join(frame, node, ns, fork_id)

	def maybe_fire_join(
		self,
		frame: dict[str, Any],
		node: Node,
		ns: dict[str, Any],
		fork_id: str | None,
		*,
		quiescent: bool = False,
	) -> None:
		config: Any = node.config
		arrived = len(ns["arrived"])
		started = len(frame["nodes"].get(fork_id, {}).get("branches", [])) if fork_id else arrived
		needed = {"all": started, "any": 1, "n_of_m": config.n or started}[config.mode]
		if arrived >= needed or (quiescent and config.mode == "all" and arrived > 0):
			outputs = {
				source: frame["nodes"][source].get("output")
				for source in ns.get("from", [])
				if source in frame["nodes"]
			}
			if fork_id:
				self.cancel_active(frame, reason="join", only_tag=fork_id)
			self.succeed_node(frame, node, ns, outputs)
		elif quiescent:
			self.fail_node(
				frame,
				node,
				ns,
				StepError(
					"join_unsatisfiable",
					f"join {node.id!r} needs {needed} branch(es) but only {arrived} arrived and no other can",
				),
			)

	# -- settling: frames finishing, run status ---------------------------------------------------

	def settle_frame_later(self, frame: dict[str, Any]) -> None:
		if frame["id"] not in self._to_settle:
			self._to_settle.append(frame["id"])

	def active_in(self, frame: dict[str, Any]) -> list[str]:
		return [
			node_id
			for node_id, ns in frame["nodes"].items()
			if ns["status"] in (StepStatus.RUNNING, StepStatus.WAITING, StepStatus.SCHEDULED)
		]

	def settle(self) -> None:
		"""Finish frames that have nothing active left, innermost first, then set the run status."""
		while self._to_settle:
			frame_id = self._to_settle.pop(0)
			frame = self.state["frames"].get(frame_id)
			if frame is None or frame["status"] in ("succeeded", "cancelled", "done"):
				continue
			active = self.active_in(frame)
			if active:
				# Only joins waiting for branches that can no longer arrive: fire or fail them.
				level = self.engine.level_of(frame)
				joins = [n for n in active if level.nodes[n].type == "join"]
				if frame["status"] == "running" and len(joins) == len(active):
					for join_id in joins:
						self.maybe_fire_join(
							frame,
							level.nodes[join_id],
							frame["nodes"][join_id],
							level.forks_of.get(join_id),
							quiescent=True,
						)
					self.settle_frame_later(frame)
				continue
			self.finish_frame(frame)
		self.update_status()

	def frame_output(self, frame: dict[str, Any]) -> Any:
		last = frame["ended"] or frame["last"]
		return frame["nodes"][last].get("output") if last else None

	def finish_frame(self, frame: dict[str, Any]) -> None:
		failed = frame["status"] == "failed"
		frame["status"] = "failed" if failed else "succeeded"
		if frame["parent_key"] is None:
			self.finish_root(frame)
			return
		parent_frame, parent_node, parent_ns = self.node_of(frame["parent_key"])
		if parent_ns["status"] not in (StepStatus.RUNNING, StepStatus.WAITING):
			return  # the parent was cancelled meanwhile
		if failed:
			# One item or iteration failed: stop its siblings before failing the map or loop.
			self.cancel_children(parent_ns["key"], reason="failure")
			self.fail_node(
				parent_frame,
				parent_node,
				parent_ns,
				StepError(
					frame["error"]["code"], frame["error"]["message"], details=frame["error"].get("details")
				),
			)
			return
		output = self.frame_output(frame)
		if parent_node.type == "map":
			index = frame["vars"]["index"]
			parent_ns["results"][index] = output
			parent_ns["active"] -= 1
			parent_ns["done"] += 1
			del self.state["frames"][frame["id"]]
			if parent_ns["done"] == len(parent_ns["items"]):
				self.finish_map(parent_frame, parent_node, parent_ns)
			else:
				self.fill_map(parent_frame, parent_node, parent_ns)
			self.settle_frame_later(parent_frame)
			return
		# a loop iteration
		config: Any = parent_node.config
		parent_ns["result"] = output
		parent_ns["iteration"] += 1
		try:
			condition = self.loop_condition(parent_frame, parent_ns, config, body=frame)
		except ExpressionError as exc:
			del self.state["frames"][frame["id"]]
			located = exc.at(node_id=parent_node.id, field="condition")
			self.fail_node(parent_frame, parent_node, parent_ns, StepError("expression_error", str(located)))
			self.settle_frame_later(parent_frame)
			return
		del self.state["frames"][frame["id"]]
		finished = (config.mode == "while" and not condition) or (config.mode == "until" and condition)
		if finished:
			self.succeed_node(parent_frame, parent_node, parent_ns, output)
		elif parent_ns["iteration"] >= config.max_iterations:
			self.fail_node(
				parent_frame,
				parent_node,
				parent_ns,
				StepError(
					"max_iterations_exceeded",
					f"loop {parent_node.id!r} reached max_iterations ({config.max_iterations}) without its condition ending it",
				),
			)
		else:
			self.emit("loop.iteration", key=parent_ns["key"], iteration=parent_ns["iteration"])
			self.start_iteration(parent_frame, parent_node, parent_ns)
		self.settle_frame_later(parent_frame)

	def finish_root(self, frame: dict[str, Any]) -> None:
		if frame["status"] == "failed":
			self.state["error"] = frame["error"]
			self.run_failed()
			return
		outputs = self.engine.definition.outputs
		try:
			output = self.render(dict(outputs), frame) if outputs else self.frame_output(frame)
		except ExpressionError as exc:
			frame["status"] = "failed"
			self.state["error"] = frame["error"] = StepError(
				"expression_error", str(exc.at(field="outputs"))
			).as_dict()
			self.run_failed()
			return
		self.state["output"] = output
		self.finish(RunStatus.SUCCEEDED, output=output)

	def finish(self, status: RunStatus, *, output: Any = None, error: dict[str, Any] | None = None) -> None:
		self.set_status(status)
		self.commands.append(CancelTimers("run"))
		self.commands.append(Finish(status, output, error))
		self.emit(f"run.{status.value}", output=output, error=error)

	def run_failed(self) -> None:
		to_undo = [k for k in self.state["completed"] if self.is_compensable(k)]
		if to_undo:
			self.begin_compensation("failure")
			return
		self.finish(RunStatus.FAILED, error=self.state["error"])

	def is_compensable(self, key: str) -> bool:
		frame_id, node_id = self.split(key)
		frame = self.state["frames"].get(frame_id)
		# Steps inside finished (folded) body frames are compensated through their recorded key.
		return node_id in self.engine.compensable and (
			frame is None or frame["nodes"].get(node_id, {}).get("status") == StepStatus.SUCCEEDED
		)

	def set_status(self, status: RunStatus) -> None:
		current = RunStatus(self.state["status"])
		if current == status:
			return
		check_run_transition(current, status)
		self.state["status"] = status.value
		if status in (RunStatus.RUNNING, RunStatus.WAITING):
			self.emit(f"run.{status.value}")

	def update_status(self) -> None:
		status = RunStatus(self.state["status"])
		if status not in (RunStatus.RUNNING, RunStatus.WAITING):
			return
		executing = any(
			ns["status"] in (StepStatus.RUNNING, StepStatus.SCHEDULED)
			and self.engine.level_of(f).nodes[node_id].type == "task"
			for f in self.state["frames"].values()
			for node_id, ns in f["nodes"].items()
		)
		self.set_status(RunStatus.RUNNING if executing else RunStatus.WAITING)

	# -- compensation -----------------------------------------------------------------------------

	def begin_compensation(self, mode: str) -> None:
		queue = list(reversed(self.state["completed"]))
		self.state["compensation"] = {
			"mode": mode,
			"queue": queue,
			"current": None,
			"attempt": 0,
			"failed": [],
		}
		self.set_status(RunStatus.COMPENSATING)
		self.emit("run.compensating", steps=queue)
		self.next_compensation()

	def node_anywhere(self, node_id: str) -> Node:
		for level in self.engine.levels.values():
			if node_id in level.nodes:
				return level.nodes[node_id]
		raise KeyError(node_id)  # pragma: no cover - keys come from the definition

	def next_compensation(self) -> None:
		comp = self.state["compensation"]
		if not comp["queue"]:
			if comp["failed"]:
				self.finish(
					RunStatus.COMPENSATION_FAILED,
					error={**(self.state["error"] or {}), "compensation_failed": comp["failed"]},
				)
			else:
				self.finish(RunStatus.COMPENSATED, error=self.state["error"])
			return
		key = comp["queue"].pop(0)
		comp["current"] = key
		comp["attempt"] = 1
		self.dispatch_compensation(key)

	def dispatch_compensation(self, key: str) -> None:
		comp = self.state["compensation"]
		_, node_id = self.split(key)
		node = self.node_anywhere(node_id)
		config: Any = node.config
		compensation = config.compensation
		frame_id, _ = self.split(key)
		frame = self.state["frames"].get(frame_id) or self.state["frames"][ROOT]
		comp_key = f"compensate:{key}"
		try:
			step_input = self.render(compensation.input, frame, {"result": self.step_output(key)})
		except ExpressionError as exc:
			error = StepError("expression_error", str(exc.at(node_id=node.id, field="compensation.input")))
			comp["failed"].append({"key": key, "error": error.as_dict()})
			self.emit("compensation.failed", key=key, node=node.id, error=error.as_dict())
			self.next_compensation()
			return
		self.commands.append(
			RecordStep(
				comp_key,
				node.id,
				"compensation",
				frame_id,
				StepStatus.SCHEDULED,
				comp["attempt"],
				input=step_input,
			)
		)
		self.emit("compensation.scheduled", key=key, node=node.id, attempt=comp["attempt"])
		self.commands.append(
			Dispatch(
				key=comp_key,
				node_id=node.id,
				attempt=comp["attempt"],
				connector=compensation.connector,
				action=compensation.action,
				connection=compensation.connection,
				input=step_input,
				queue=config.queue,
				timeout=self.task_timeout(node),
				idempotency_key=f"{self.state['meta'].get('run_id', 'run')}:{comp_key}:{comp['attempt']}",
				compensation=True,
			)
		)

	def step_output(self, key: str) -> Any:
		frame_id, node_id = self.split(key)
		frame = self.state["frames"].get(frame_id)
		if frame is not None and node_id in frame["nodes"]:
			return frame["nodes"][node_id].get("output")
		return self.state.get("folded_outputs", {}).get(key)

	def on_compensation(self, happening: StepSucceeded | StepFailed) -> None:
		comp = self.state["compensation"]
		key = happening.key.removeprefix("compensate:")
		if comp is None or comp["current"] != key or happening.attempt != comp["attempt"]:
			raise Stale(happening.key)
		_, node_id = self.split(key)
		node = self.node_anywhere(node_id)
		if isinstance(happening, StepSucceeded):
			self.commands.append(
				RecordStep(
					happening.key,
					node_id,
					"compensation",
					self.split(key)[0],
					StepStatus.COMPENSATED,
					comp["attempt"],
					output=happening.output,
				)
			)
			self.emit("compensation.succeeded", key=key, node=node_id)
			self.next_compensation()
			return
		policy = self.retry_policy(node)
		error = happening.error
		self.commands.append(
			RecordStep(
				happening.key,
				node_id,
				"compensation",
				self.split(key)[0],
				StepStatus.FAILED,
				comp["attempt"],
				error=error.as_dict(),
			)
		)
		if (
			error.retryable
			and comp["attempt"] < policy.max_attempts
			and error.code not in policy.non_retryable_errors
		):
			delay = backoff(policy, comp["attempt"], happening.key)
			comp["attempt"] += 1
			self.emit(
				"compensation.retrying",
				key=key,
				node=node_id,
				attempt=comp["attempt"],
				delay=delay,
				error=error.as_dict(),
			)
			self.commands.append(StartTimer(happening.key, "retry", self.now + delay))
			return
		comp["failed"].append({"key": key, "error": error.as_dict()})
		self.emit("compensation.failed", key=key, node=node_id, error=error.as_dict())
		self.next_compensation()

	# -- happenings -----------------------------------------------------------------------------

	def handle(self, happening: Happening) -> None:
		status = RunStatus(self.state["status"])
		if isinstance(happening, StepSucceeded | StepFailed) and happening.key.startswith("compensate:"):
			self.on_compensation(happening)
		elif isinstance(happening, StepSucceeded):
			self.on_step_succeeded(happening)
		elif isinstance(happening, StepFailed):
			self.on_step_failed(happening)
		elif isinstance(happening, TimerFired):
			self.on_timer(happening)
		elif isinstance(happening, EventReceived):
			self.on_waiting_step(
				happening.key,
				"wait_for_event",
				lambda f, n, ns: self.event_arrived(f, n, ns, happening.payload),
			)
		elif isinstance(happening, ApprovalDecided):
			self.on_waiting_step(
				happening.key, "approval", lambda f, n, ns: self.approval_decided(f, n, ns, happening)
			)
		elif isinstance(happening, ChildFinished):
			self.on_waiting_step(
				happening.key, "sub_workflow", lambda f, n, ns: self.child_finished(f, n, ns, happening)
			)
		elif isinstance(happening, Cancel):
			self.cancel_run(status, happening)
		elif isinstance(happening, Pause):
			self.pause(status)
		elif isinstance(happening, Resume):
			self.resume(status)
		elif isinstance(happening, RetryFailed):
			self.retry_failed(status)

	def current_task(self, key: str, attempt: int) -> tuple[dict[str, Any], Node, dict[str, Any]]:
		frame, node, ns = self.node_of(key)
		if (
			node.type != "task"
			or ns["attempt"] != attempt
			or ns["status"] not in (StepStatus.SCHEDULED, StepStatus.RUNNING)
		):
			raise Stale(key)
		if RunStatus(self.state["status"]) in (RunStatus.COMPENSATING, *TERMINAL):
			raise Stale(key)
		return frame, node, ns

	def on_step_succeeded(self, happening: StepSucceeded) -> None:
		frame, node, ns = self.current_task(happening.key, happening.attempt)
		self.succeed_node(frame, node, ns, happening.output)

	def on_step_failed(self, happening: StepFailed) -> None:
		frame, node, ns = self.current_task(happening.key, happening.attempt)
		policy = self.retry_policy(node)
		error = happening.error
		if (
			error.retryable
			and happening.attempt < policy.max_attempts
			and error.code not in policy.non_retryable_errors
		):
			delay = backoff(policy, happening.attempt, happening.key)
			ns["status"] = StepStatus.WAITING.value
			ns["error"] = error.as_dict()
			ns["retry_at"] = self.now + delay
			self.record(frame, node, ns)
			self.emit(
				"step.retrying",
				key=ns["key"],
				node=node.id,
				attempt=happening.attempt,
				delay=delay,
				error=error.as_dict(),
			)
			self.commands.append(StartTimer(ns["key"], "retry", self.now + delay))
			self.settle_frame_later(frame)
			return
		if error.retryable and happening.attempt >= policy.max_attempts:
			error = StepError(
				error.code,
				f"{error.message} (gave up after {happening.attempt} attempts)",
				False,
				error.details,
			)
		self.fail_node(frame, node, ns, error)

	def on_timer(self, happening: TimerFired) -> None:
		if happening.key == "run":
			if happening.purpose != "run_timeout" or RunStatus(self.state["status"]) in TERMINAL:
				raise Stale(happening.key)
			self.state["error"] = {
				"code": "run_timeout",
				"message": f"the run exceeded run_timeout_seconds ({self.engine.definition.defaults.run_timeout_seconds})",
			}
			root = self.frame(ROOT)
			self.abort_all(reason="timeout")
			root["status"] = "failed"
			root["error"] = self.state["error"]
			self.emit("run.timed_out")
			self.run_failed()
			return
		if happening.key.startswith("compensate:"):
			comp = self.state["compensation"]
			if comp is None or comp["current"] != happening.key.removeprefix("compensate:"):
				raise Stale(happening.key)
			self.dispatch_compensation(comp["current"])
			return
		frame, node, ns = self.node_of(happening.key)
		purpose = happening.purpose
		if ns["status"] != StepStatus.WAITING:
			raise Stale(happening.key)
		if purpose == "retry" and node.type == "task":
			self.safe_dispatch(frame, node, ns, attempt=ns["attempt"] + 1)
		elif purpose == "wait" and node.type == "wait":
			self.succeed_node(frame, node, ns, {"waited_until": ns.get("fire_at")})
		elif purpose == "event_timeout" and node.type == "wait_for_event":
			self.commands.append(Unsubscribe(ns["key"]))
			self.take_timeout(
				frame, node, ns, "event_timeout", f"no {node.config.event_type!r} event arrived in time"
			)
		elif purpose == "approval_escalation" and node.type == "approval":
			escalation = node.config.escalation
			assert escalation is not None, "an escalation timer is only started for a configured escalation"
			ns["escalated"] = True
			self.commands.append(
				EscalateApproval(ns["key"], escalation.to_role, tuple(escalation.to_assignees))
			)
			self.emit(
				"approval.escalated",
				key=ns["key"],
				node=node.id,
				to_role=escalation.to_role,
				to_assignees=list(escalation.to_assignees),
			)
		elif purpose == "approval_deadline" and node.type == "approval":
			self.commands.append(CloseApproval(ns["key"], "timed_out"))
			self.take_timeout(frame, node, ns, "approval_timeout", "nobody decided before the deadline")
		else:
			raise Stale(happening.key)

	def take_timeout(
		self, frame: dict[str, Any], node: Node, ns: dict[str, Any], code: str, message: str
	) -> None:
		self.commands.append(CancelTimers(ns["key"]))
		level = self.engine.level_of(frame)
		if any(_handle(e) == "timeout" for e in level.edges_out[node.id]):
			self.succeed_node(frame, node, ns, {"timed_out": True}, handle="timeout")
		else:
			self.fail_node(frame, node, ns, StepError(code, f"{node.id}: {message}"))

	def on_waiting_step(self, key: str, node_type: str, action: Any) -> None:
		frame, node, ns = self.node_of(key)
		if node.type != node_type or ns["status"] != StepStatus.WAITING:
			raise Stale(key)
		action(frame, node, ns)

	def event_arrived(self, frame: dict[str, Any], node: Node, ns: dict[str, Any], payload: Any) -> None:
		self.commands.append(CancelTimers(ns["key"]))
		self.commands.append(Unsubscribe(ns["key"]))
		self.succeed_node(frame, node, ns, payload)

	def approval_decided(
		self, frame: dict[str, Any], node: Node, ns: dict[str, Any], decision: ApprovalDecided
	) -> None:
		self.commands.append(CancelTimers(ns["key"]))
		self.commands.append(CloseApproval(ns["key"], decision.decision))
		output = {
			"decision": decision.decision,
			"by": decision.by,
			"comment": decision.comment,
			"data": decision.data,
		}
		self.emit("approval.decided", key=ns["key"], node=node.id, decision=decision.decision, by=decision.by)
		self.succeed_node(frame, node, ns, output, handle=decision.decision)

	def child_finished(
		self, frame: dict[str, Any], node: Node, ns: dict[str, Any], finished: ChildFinished
	) -> None:
		if finished.succeeded:
			self.succeed_node(frame, node, ns, finished.output)
			return
		error = finished.error or StepError("child_failed", "the sub-workflow run failed")
		assert isinstance(node, SubWorkflowNode)
		policy = node.config.on_failure
		if policy == "continue":
			self.succeed_node(frame, node, ns, {"error": error.as_dict()})
		else:
			self.fail_node(frame, node, ns, error)

	# -- lifecycle requests -------------------------------------------------------------------------

	def abort_all(self, *, reason: str) -> None:
		for frame in list(self.state["frames"].values()):
			if frame["status"] == "running":
				self.cancel_active(frame, reason=reason)

	def cancel_run(self, status: RunStatus, cancel: Cancel) -> None:
		if status in TERMINAL or status == RunStatus.COMPENSATING:
			raise IllegalTransition(status, RunStatus.CANCELLED, "cancel")
		self.abort_all(reason="cancelled")
		for frame in self.state["frames"].values():
			if frame["status"] == "running":
				frame["status"] = "cancelled"
		self.state["held"] = []
		self.state["error"] = {"code": "cancelled", "message": cancel.reason or "the run was cancelled"}
		if cancel.compensate and any(self.is_compensable(k) for k in self.state["completed"]):
			self.begin_compensation("cancel")
			return
		self.finish(RunStatus.CANCELLED, error=self.state["error"])

	def pause(self, status: RunStatus) -> None:
		if status == RunStatus.PAUSED:
			return
		check_run_transition(status, RunStatus.PAUSED, action="pause")
		self.set_status(RunStatus.PAUSED)
		self.emit("run.paused")

	def resume(self, status: RunStatus) -> None:
		if status != RunStatus.PAUSED:
			check_run_transition(status, RunStatus.RUNNING, action="resume") if status in TERMINAL else None
			return
		self.state["status"] = RunStatus.RUNNING.value
		self.emit("run.resumed")
		held, self.state["held"] = self.state["held"], []
		for key in held:
			frame, node, ns = self.node_of(key)
			self.safe_dispatch(frame, node, ns, attempt=ns["attempt"])
		for frame in self.state["frames"].values():
			self.settle_frame_later(frame)

	def retry_failed(self, status: RunStatus) -> None:
		if status != RunStatus.FAILED:
			raise IllegalRetry(status)
		self.state["status"] = RunStatus.RUNNING.value
		self.state["error"] = None
		self.emit("run.retried")
		for frame in sorted(self.state["frames"].values(), key=lambda f: -f["id"].count(":")):
			if frame["status"] not in ("failed", "cancelled"):
				continue
			frame["status"] = "running"
			frame["error"] = None
			level = self.engine.level_of(frame)
			for node_id, ns in list(frame["nodes"].items()):
				node = level.nodes[node_id]
				redo = (ns["status"] == StepStatus.FAILED and not ns.get("handled")) or (
					ns["status"] == StepStatus.CANCELLED and ns.get("cancel_reason") in ("failure", "timeout")
				)
				if not redo:
					continue
				if node.type == "task":
					self.safe_dispatch(frame, node, ns, attempt=ns["attempt"] + 1)
				elif node.type in ("map", "loop") and any(
					f["parent_key"] == ns["key"] for f in self.state["frames"].values()
				):
					# Its failed items or iteration were just resumed (deeper frames go first).
					ns["status"] = StepStatus.RUNNING.value
					ns.pop("error", None)
					self.record(frame, node, ns)
				elif node.type == "join":
					# Back to collecting: the retried branches may still arrive.
					ns["status"] = StepStatus.WAITING.value
					ns.pop("error", None)
					self.record(frame, node, ns)
				else:
					del frame["nodes"][node_id]
					self.activate(frame, node_id, tags=ns.get("tags", []), attempt=ns["attempt"] + 1)
			self.settle_frame_later(frame)
