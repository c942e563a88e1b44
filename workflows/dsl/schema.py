"""The workflow definition document: frozen Pydantic models, one per node type.

A definition is a graph. ``nodes`` are the steps, ``edges`` connect a source node's
*handle* (an exit such as ``out``, ``error`` or a switch case id) to a target node. The
document is plain JSON: expressions and templates are strings and JSON values, never
wrapper objects, so what the designer saves, the API returns and an export holds are the
same bytes.

Edge semantics:
* A ``parallel`` node starts every outgoing branch whose edge condition holds.
* Any other node, when it finishes through a handle, takes the *first* outgoing edge on
  that handle (in document order) whose condition holds; an unconditioned edge is tried
  last, whatever its position. When no edge matches, that branch of the run ends.
* ``fail`` and ``end`` are terminal: they have no outgoing edges. Reaching ``end``
  completes the run (or the body iteration) with its output; ``fail`` fails it.

Loop and map bodies are nested inline, as a :class:`Subgraph` in the node's ``config``
(the shape of Step Functions' Map ``ItemProcessor`` and Serverless Workflow's ``for.do``),
rather than references to separately stored sub-workflows. The reasons:

* One self-contained, versioned document: publishing v3 freezes the body with its parent,
  so a run never sees a body edited after it started, and a diff shows body changes
  next to the rest.
* The designer shows a body as a group on the same canvas and validates it with its
  parent: ids are unique across the whole document and errors point into the body.
* A sub-workflow stays the tool for reuse across workflows (the ``sub_workflow`` node),
  with its own versions, permissions and runs.

A body's entry is its one node without incoming edges; an iteration finishes when every
branch reaches a node with no outgoing edge to take. Bodies cannot hold a ``start`` node
and nest at most :attr:`~workflows.dsl.limits.Limits.max_body_depth` deep.

``Definition.model_validate`` checks the shape and the rules local to one object (for
example a join's ``n``). The graph rules (reachability, cycles, joins matching forks,
expressions that compile, references that exist) are checked by
:func:`workflows.dsl.validation.validate_definition`, which is what callers should use.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from typing import Annotated, Any, Literal, Self, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, model_validator

from workflows.dsl.scalars import (
	CaseId,
	ConnectionName,
	Description,
	Duration,
	ErrorCode,
	Expression,
	Handle,
	Identifier,
	JsonSchema,
	Name,
	NodeId,
	Seconds,
	Slug,
	Template,
	Until,
	Username,
	custom_error,
	looks_like_iso_duration,
	looks_like_timestamp,
	parse_duration,
	parse_iso_duration,
	parse_timestamp,
)

__all__ = [
	"NODE_TYPES",
	"ROLES",
	"SCHEMA_VERSION",
	"TERMINAL_NODE_TYPES",
	"ApprovalConfig",
	"ApprovalNode",
	"Compensation",
	"Defaults",
	"Definition",
	"Edge",
	"EndConfig",
	"EndNode",
	"Escalation",
	"Expression",
	"FailConfig",
	"FailNode",
	"JoinConfig",
	"JoinNode",
	"LoopConfig",
	"LoopNode",
	"MapConfig",
	"MapNode",
	"Node",
	"NodeId",
	"ParallelConfig",
	"ParallelNode",
	"Position",
	"RetryPolicy",
	"Role",
	"SetConfig",
	"SetNode",
	"StartConfig",
	"StartNode",
	"SubWorkflowConfig",
	"SubWorkflowNode",
	"Subgraph",
	"SwitchCase",
	"SwitchConfig",
	"SwitchNode",
	"TaskConfig",
	"TaskNode",
	"Template",
	"WaitConfig",
	"WaitForEventConfig",
	"WaitForEventNode",
	"WaitNode",
	"definition_json_schema",
	"looks_like_iso_duration",
	"looks_like_timestamp",
	"parse_duration",
	"parse_iso_duration",
	"parse_timestamp",
	"source_handles",
]

SCHEMA_VERSION = "1.0"
"""The version of this document format; stored in every definition as ``schema_version``."""

NODE_TYPES: tuple[str, ...] = (
	"start",
	"task",
	"switch",
	"parallel",
	"join",
	"map",
	"loop",
	"wait",
	"wait_for_event",
	"approval",
	"sub_workflow",
	"set",
	"fail",
	"end",
)
"""Every node type, in the order the designer's palette lists them."""

TERMINAL_NODE_TYPES: frozenset[str] = frozenset({"fail", "end"})
"""Node types that may not have outgoing edges."""

ROLES: tuple[str, ...] = ("viewer", "editor", "operator", "admin", "owner")
"""Tenant roles an approval may be assigned to (mirrors :class:`workflows.roles.Role`)."""

Role: TypeAlias = Literal["viewer", "editor", "operator", "admin", "owner"]

_MODEL_CONFIG = ConfigDict(frozen=True, extra="forbid", strict=True, use_attribute_docstrings=True)


class _Model(BaseModel):
	model_config = _MODEL_CONFIG


class Position(_Model):
	"""Where the designer draws a node; no effect on execution."""

	x: float = 0.0
	y: float = 0.0


class RetryPolicy(_Model):
	"""How often and how fast a failed step is tried again (exponential backoff)."""

	max_attempts: int = Field(default=3, ge=1, le=100)
	"""Attempts in total, the first included; 1 means no retry."""
	initial_interval_seconds: float = Field(default=1.0, ge=0, le=86_400)
	"""Wait before the second attempt."""
	backoff_coefficient: float = Field(default=2.0, ge=1, le=100)
	"""Each wait is the previous one times this."""
	max_interval_seconds: float = Field(default=300.0, ge=0, le=86_400)
	"""Upper bound of a single wait."""
	non_retryable_errors: list[ErrorCode] = Field(default_factory=list)
	"""Error codes that fail the step at once."""

	@model_validator(mode="after")
	def _intervals(self) -> Self:
		if self.max_interval_seconds < self.initial_interval_seconds:
			raise custom_error(
				"invalid_retry",
				f"max_interval_seconds ({self.max_interval_seconds}) is below initial_interval_seconds "
				f"({self.initial_interval_seconds})",
				field="max_interval_seconds",
				hint="raise max_interval_seconds or lower initial_interval_seconds",
			)
		return self


class Defaults(_Model):
	"""Settings every step and run inherits unless a node overrides them."""

	timeout_seconds: Seconds = 300
	"""Default time limit of one step attempt."""
	run_timeout_seconds: Seconds | None = None
	"""Time limit of a whole run; None for none."""
	retry: RetryPolicy = Field(default_factory=RetryPolicy)
	"""Default retry policy of task steps."""
	priority: int = Field(default=5, ge=0, le=9)
	"""Scheduling priority of runs, 0 (lowest) to 9 (highest)."""
	concurrency_limit: int | None = Field(default=None, ge=1, le=100_000)
	"""Most runs of this workflow active at once; None for no limit."""


class _NodeBase(_Model):
	id: NodeId
	"""Unique in the whole definition; edges and expressions refer to nodes by id."""
	name: Name = ""
	"""Shown in the designer and run views."""
	description: Description = ""
	position: Position = Field(default_factory=Position)


class StartConfig(_Model):
	"""The start node needs no settings; the run input is checked against ``input_schema``."""


class StartNode(_NodeBase):
	"""Where a run begins; exactly one per definition, at the top level."""

	type: Literal["start"]
	config: StartConfig = Field(default_factory=StartConfig)


class Compensation(_Model):
	"""The action that undoes a completed task when the run is compensated (saga)."""

	connector: Identifier
	action: Identifier
	connection: ConnectionName | None = None
	"""Stored credential to use; the task's own when None."""
	input: Template = Field(default_factory=dict)
	"""May refer to the task's output as ``${ .steps.<id>.output }``."""


class TaskConfig(_Model):
	"""Run one connector action."""

	connector: Identifier
	"""Connector name, e.g. ``http``."""
	action: Identifier
	"""Action of the connector, e.g. ``request``."""
	connection: ConnectionName | None = None
	"""Name of a stored connection (credential) the action uses."""
	input: Template = Field(default_factory=dict)
	"""The action input; strings may embed ``${ }`` expressions."""
	output: Template = None
	"""Reshapes the action result (available as ``.result``); None keeps it as is."""
	retry: RetryPolicy | None = None
	"""Overrides ``defaults.retry``."""
	timeout_seconds: Seconds | None = None
	"""Overrides ``defaults.timeout_seconds``."""
	compensation: Compensation | None = None
	queue: Literal["steps", "steps.cpu"] = "steps"
	"""Worker queue: ``steps`` for I/O-bound actions, ``steps.cpu`` for CPU-bound ones."""


class TaskNode(_NodeBase):
	"""A connector action. Handles: ``out``, ``error``."""

	type: Literal["task"]
	config: TaskConfig


class SwitchCase(_Model):
	"""One branch of a switch: its id is the source handle of the edges it takes."""

	id: CaseId
	condition: Expression
	label: Name = ""


class SwitchConfig(_Model):
	"""Cases tried in order; the first whose condition holds is taken, else ``default``."""

	cases: list[SwitchCase] = Field(min_length=1)

	@model_validator(mode="after")
	def _no_default_case(self) -> Self:
		for index, case in enumerate(self.cases):
			if case.id == "default":
				raise custom_error(
					"reserved_case_id",
					"'default' is the switch's built-in fallback handle and cannot be a case id",
					field=f"cases/{index}/id",
					hint="rename the case",
				)
		return self


class SwitchNode(_NodeBase):
	"""Conditional branching. Handles: each case id, and ``default``."""

	type: Literal["switch"]
	config: SwitchConfig


class ParallelConfig(_Model):
	"""A fork needs no settings."""

	label: Name = ""


class ParallelNode(_NodeBase):
	"""Fork: starts every outgoing branch whose condition holds. Handle: ``out``."""

	type: Literal["parallel"]
	config: ParallelConfig = Field(default_factory=ParallelConfig)


class JoinConfig(_Model):
	"""How many branches of the matching fork must arrive before the run goes on."""

	mode: Literal["all", "any", "n_of_m"] = "all"
	n: int | None = Field(default=None, ge=1)
	"""Branches to wait for when ``mode`` is ``n_of_m``."""
	fork: NodeId | None = None
	"""The matching parallel node; when None, the nearest parallel node on every path to the join."""

	@model_validator(mode="after")
	def _n_matches_mode(self) -> Self:
		if self.mode == "n_of_m" and self.n is None:
			raise custom_error(
				"required",
				"mode 'n_of_m' needs n, the number of branches to wait for",
				field="n",
				hint="set n to a number of branches, at least 1",
			)
		if self.mode != "n_of_m" and self.n is not None:
			raise custom_error(
				"unexpected_field",
				f"n is only used with mode 'n_of_m', not {self.mode!r}",
				field="n",
				hint="remove n, or set mode to 'n_of_m'",
			)
		return self


class JoinNode(_NodeBase):
	"""Waits for branches of a fork. Handle: ``out``."""

	type: Literal["join"]
	config: JoinConfig = Field(default_factory=JoinConfig)


class _Graph(_Model):
	"""Look-ups shared by a definition and a body (one graph level each)."""

	nodes: list[Node]
	edges: list[Edge]

	def node(self, node_id: str) -> Node | None:
		"""The node of this graph level with that id."""
		return next((node for node in self.nodes if node.id == node_id), None)

	def outgoing(self, node_id: str) -> list[Edge]:
		"""Edges leaving a node, in document order."""
		return [edge for edge in self.edges if edge.source == node_id]

	def incoming(self, node_id: str) -> list[Edge]:
		"""Edges entering a node, in document order."""
		return [edge for edge in self.edges if edge.target == node_id]


class Subgraph(_Graph):
	"""The body of a loop or map: nodes and edges of their own, validated with the parent.

	The entry is the one node without incoming edges; an iteration ends when its branches
	reach nodes with no outgoing edge to take.
	"""

	nodes: list[Node] = Field(default_factory=list)
	edges: list[Edge] = Field(default_factory=list)


class MapConfig(_Model):
	"""Run the body once per item, several at a time; outputs are collected in item order."""

	items: Expression
	"""Evaluates to the array to iterate; the body sees ``.item`` and ``.index``."""
	max_concurrency: int = Field(default=10, ge=1, le=1_000)
	body: Subgraph
	result: Template = None
	"""Reshapes the collected outputs (``.results``); None keeps the array."""


class MapNode(_NodeBase):
	"""For-each. Handles: ``out``, ``error``."""

	type: Literal["map"]
	config: MapConfig


class LoopConfig(_Model):
	"""Repeat the body while (or until) a condition holds, at most ``max_iterations`` times."""

	mode: Literal["while", "until"] = "while"
	"""``while`` tests before each iteration; ``until`` tests after it."""
	condition: Expression
	max_iterations: int = Field(ge=1, le=10_000)
	body: Subgraph


class LoopNode(_NodeBase):
	"""Loop. Handles: ``out``, ``error``."""

	type: Literal["loop"]
	config: LoopConfig


class WaitConfig(_Model):
	"""Wait for a time span or until a moment: exactly one of ``duration`` and ``until``."""

	duration: Duration | None = None
	until: Until | None = None

	@model_validator(mode="after")
	def _exactly_one(self) -> Self:
		if self.duration is not None and self.until is not None:
			raise custom_error(
				"conflicting_fields",
				"a wait has both duration and until",
				field="until",
				hint="keep one of duration and until",
			)
		if self.duration is None and self.until is None:
			raise custom_error(
				"required",
				"a wait needs a duration or an until",
				hint="set duration (e.g. 'PT10M' or 600) or until (e.g. '2025-01-31T09:00:00Z')",
			)
		return self


class WaitNode(_NodeBase):
	"""Timer. Handle: ``out``."""

	type: Literal["wait"]
	config: WaitConfig


class WaitForEventConfig(_Model):
	"""Wait for an event of a type whose correlation key equals ``correlation``."""

	event_type: Identifier
	correlation: Expression
	"""Evaluated when the wait starts; must equal the event's correlation key."""
	timeout_seconds: Seconds | None = None
	"""After this, leave through the ``timeout`` handle."""


class WaitForEventNode(_NodeBase):
	"""Handles: ``out`` (event arrived), ``timeout``."""

	type: Literal["wait_for_event"]
	config: WaitForEventConfig


class Escalation(_Model):
	"""Who else is asked when nobody has decided after ``after_seconds``."""

	after_seconds: Seconds
	to_role: Role | None = None
	to_assignees: list[Username] = Field(default_factory=list)

	@model_validator(mode="after")
	def _has_target(self) -> Self:
		if self.to_role is None and not self.to_assignees:
			raise custom_error(
				"required",
				"an escalation needs to_role or to_assignees",
				hint="name a role (e.g. 'admin') or usernames to escalate to",
			)
		return self


class ApprovalConfig(_Model):
	"""A human decision: assignees and/or a role, an optional form, deadline and escalation."""

	assignees: list[Username] = Field(default_factory=list)
	"""Usernames who may decide."""
	role: Role | None = None
	"""Any member with this role may decide."""
	title: Name = ""
	instructions: Template = ""
	form_schema: JsonSchema = Field(default_factory=dict)
	"""JSON Schema of the form the approver fills in; its data is the node output."""
	deadline_seconds: Seconds | None = None
	"""After this, leave through the ``timeout`` handle."""
	escalation: Escalation | None = None

	@model_validator(mode="after")
	def _has_approvers(self) -> Self:
		if self.role is None and not self.assignees:
			raise custom_error(
				"required",
				"an approval needs assignees or a role",
				field="assignees",
				hint="list usernames in assignees, or set role (e.g. 'operator')",
			)
		if (
			self.escalation is not None
			and self.deadline_seconds is not None
			and self.escalation.after_seconds >= self.deadline_seconds
		):
			raise custom_error(
				"invalid_escalation",
				f"escalation after {self.escalation.after_seconds}s comes at or after the deadline "
				f"({self.deadline_seconds}s), so it never happens",
				field="escalation/after_seconds",
				hint="escalate before the deadline",
			)
		return self


class ApprovalNode(_NodeBase):
	"""Human task. Handles: ``approved``, ``rejected``, ``timeout``."""

	type: Literal["approval"]
	config: ApprovalConfig


class SubWorkflowConfig(_Model):
	"""Start a run of another workflow."""

	workflow: Slug
	version: int | Literal["latest"] = "latest"
	"""A published version number, or ``latest`` (resolved when the step starts)."""
	input: Template = Field(default_factory=dict)
	on_failure: Literal["fail", "continue", "error_branch"] = "fail"
	"""``fail`` fails this run; ``continue`` goes on through ``out``; ``error_branch`` through ``error``."""
	wait: bool = True
	"""Wait for the child run to finish; when False the step completes once the child starts."""

	@model_validator(mode="after")
	def _consistent(self) -> Self:
		if isinstance(self.version, int) and self.version < 1:
			raise custom_error(
				"invalid_version",
				f"version {self.version} does not exist; versions start at 1",
				field="version",
				hint="use a published version number or 'latest'",
			)
		if not self.wait and self.on_failure != "fail":
			raise custom_error(
				"conflicting_fields",
				f"on_failure {self.on_failure!r} needs wait: a child run that is not waited for cannot "
				"route its failure",
				field="on_failure",
				hint="set wait to true, or remove on_failure",
			)
		return self


class SubWorkflowNode(_NodeBase):
	"""Child run. Handles: ``out``, ``error``."""

	type: Literal["sub_workflow"]
	config: SubWorkflowConfig


class SetConfig(_Model):
	"""Compute a value; it becomes the node output."""

	values: Template


class SetNode(_NodeBase):
	"""Transform. Handle: ``out``."""

	type: Literal["set"]
	config: SetConfig


class FailConfig(_Model):
	"""End the run (or iteration) as failed."""

	error_code: ErrorCode
	message: Template = ""


class FailNode(_NodeBase):
	"""Terminal: fails the run. No handles."""

	type: Literal["fail"]
	config: FailConfig


class EndConfig(_Model):
	"""Complete the run (or iteration)."""

	output: Template = None
	"""The output; None for the definition's ``outputs``."""


class EndNode(_NodeBase):
	"""Terminal: completes the run. No handles."""

	type: Literal["end"]
	config: EndConfig = Field(default_factory=EndConfig)


Node = Annotated[
	StartNode
	| TaskNode
	| SwitchNode
	| ParallelNode
	| JoinNode
	| MapNode
	| LoopNode
	| WaitNode
	| WaitForEventNode
	| ApprovalNode
	| SubWorkflowNode
	| SetNode
	| FailNode
	| EndNode,
	Field(discriminator="type"),
]
"""Any node; the ``type`` field picks the model."""

NODE_MODELS: dict[str, type[_NodeBase]] = {
	"start": StartNode,
	"task": TaskNode,
	"switch": SwitchNode,
	"parallel": ParallelNode,
	"join": JoinNode,
	"map": MapNode,
	"loop": LoopNode,
	"wait": WaitNode,
	"wait_for_event": WaitForEventNode,
	"approval": ApprovalNode,
	"sub_workflow": SubWorkflowNode,
	"set": SetNode,
	"fail": FailNode,
	"end": EndNode,
}

_STATIC_HANDLES: dict[str, tuple[str, ...]] = {
	"start": ("out",),
	"parallel": ("out",),
	"join": ("out",),
	"wait": ("out",),
	"set": ("out",),
	"task": ("out", "error"),
	"map": ("out", "error"),
	"loop": ("out", "error"),
	"sub_workflow": ("out", "error"),
	"wait_for_event": ("out", "timeout"),
	"approval": ("approved", "rejected", "timeout"),
	"fail": (),
	"end": (),
}


def source_handles(node_type: str, case_ids: tuple[str, ...] = ()) -> tuple[str, ...]:
	"""The handles edges may leave a node of this type from.

	Args:
		node_type: One of :data:`NODE_TYPES`.
		case_ids: For a switch, its case ids in order.

	Returns:
		The handle names; empty for terminal and unknown types.
	"""
	if node_type == "switch":
		return (*case_ids, "default")
	return _STATIC_HANDLES.get(node_type, ())


class Edge(_Model):
	"""A connection from a source node's handle to a target node at the same graph level."""

	id: Name | None = None
	"""Optional; the designer's id for the edge."""
	source: NodeId
	target: NodeId
	source_handle: Handle | None = None
	"""The exit of the source node; None means ``out``."""
	condition: Expression | None = None
	"""Taken only when this holds (evaluated against the run state after the source)."""
	label: Name = ""

	@property
	def handle(self) -> str:
		"""The source handle, ``out`` when not given."""
		return self.source_handle or "out"


class Definition(_Graph):
	"""A workflow definition document (format version 1.0)."""

	schema_version: Literal["1.0"]
	"""Version of this document format: ``1.0``."""
	nodes: list[Node] = Field(default_factory=list)
	edges: list[Edge] = Field(default_factory=list)
	input_schema: JsonSchema = Field(default_factory=lambda: {"type": "object"})
	"""JSON Schema the run input must satisfy."""
	outputs: dict[str, Template] = Field(default_factory=dict)
	"""Run outputs: name -> template evaluated when the run completes."""
	defaults: Defaults = Field(default_factory=Defaults)

	@property
	def start(self) -> StartNode:
		"""The start node (a validated definition has exactly one)."""
		return next(node for node in self.nodes if isinstance(node, StartNode))

	def all_nodes(self) -> Iterator[Node]:
		"""Every node, depth first, including those inside loop and map bodies."""
		stack: list[Node] = list(reversed(self.nodes))
		while stack:
			node = stack.pop()
			yield node
			if isinstance(node, MapNode | LoopNode):
				stack.extend(reversed(node.config.body.nodes))


for _model in (_Graph, Subgraph, MapConfig, MapNode, LoopConfig, LoopNode, Definition):
	_model.model_rebuild()


@functools.cache
def _json_schema() -> dict[str, Any]:
	schema = Definition.model_json_schema()
	return {
		"$schema": "https://json-schema.org/draft/2020-12/schema",
		"title": "APG workflow definition",
		**{key: value for key, value in schema.items() if key != "title"},
	}


def definition_json_schema() -> dict[str, Any]:
	"""The JSON Schema of a definition document, for the designer and the API.

	It describes the shape only; the graph rules are checked by
	:func:`workflows.dsl.validation.validate_definition`.

	Returns:
		A fresh copy (draft 2020-12) the caller may modify.
	"""
	return copy.deepcopy(_json_schema())
