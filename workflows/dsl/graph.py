"""Graph rules of a definition, checked on a lenient view of the raw document.

The checks here run even when parts of the document have the wrong shape, so that an
editor sees a dangling edge and a missing field at the same time. :func:`build_view`
reads only what is well-formed (a node without a string id is left out of the graph, a
malformed config reads as empty) and never raises; the shape errors themselves come from
the Pydantic models.

Each graph level (the top level, and every loop or map body) is checked on its own:
edges connect nodes of one level, every node is reachable from the level's entry, and
there are no cycles (repetition is a loop node's job).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from workflows.dsl.errors import DefinitionError, PointerPart, pointer
from workflows.dsl.limits import LIMITS
from workflows.dsl.schema import NODE_TYPES, TERMINAL_NODE_TYPES, source_handles

__all__ = ["GraphLevel", "RawEdge", "RawNode", "build_view", "check_graph"]

_BODY_TYPES = frozenset({"map", "loop"})


@dataclass(eq=False, slots=True)
class RawNode:
	"""A node as far as the raw document shows it."""

	parts: tuple[PointerPart, ...]
	id: str | None
	type: str | None
	"""A known node type, or None."""
	config: dict[str, Any]
	level: GraphLevel
	body: GraphLevel | None = None

	@property
	def pointer(self) -> str:
		"""JSON pointer of the node."""
		return pointer(self.parts)

	def at(self, *parts: PointerPart) -> str:
		"""JSON pointer of something inside the node."""
		return pointer((*self.parts, *parts))

	@property
	def label(self) -> str:
		"""``task 'fetch'`` for messages."""
		return f"{(self.type or 'node').replace('_', ' ')} {self.id!r}"

	def case_ids(self) -> tuple[str, ...]:
		"""A switch's case ids (the well-formed ones), in order."""
		cases = self.config.get("cases")
		if not isinstance(cases, list):
			return ()
		return tuple(
			case["id"] for case in cases if isinstance(case, dict) and isinstance(case.get("id"), str)
		)


@dataclass(eq=False, slots=True)
class RawEdge:
	"""An edge as far as the raw document shows it."""

	parts: tuple[PointerPart, ...]
	source: str | None
	target: str | None
	handle: str | None
	"""The source handle (``out`` when absent), or None when malformed."""
	condition: Any
	"""The raw condition (None when absent)."""
	id: str | None

	@property
	def conditioned(self) -> bool:
		"""Whether the edge has a condition."""
		return self.condition is not None

	@property
	def pointer(self) -> str:
		"""JSON pointer of the edge."""
		return pointer(self.parts)

	def at(self, *parts: PointerPart) -> str:
		"""JSON pointer of something inside the edge."""
		return pointer((*self.parts, *parts))


@dataclass(eq=False, slots=True)
class GraphLevel:
	"""One graph level: the top of the definition, or a loop or map body."""

	parts: tuple[PointerPart, ...]
	depth: int
	owner: RawNode | None
	nodes: list[RawNode] = field(default_factory=list)
	edges: list[RawEdge] = field(default_factory=list)
	by_id: dict[str, RawNode] = field(default_factory=dict)

	@property
	def pointer(self) -> str:
		"""JSON pointer of the level (``""`` for the top level)."""
		return pointer(self.parts)

	def levels(self) -> Iterator[GraphLevel]:
		"""This level and every body below it, depth first."""
		yield self
		for node in self.nodes:
			if node.body is not None:
				yield from node.body.levels()

	def linked_edges(self) -> list[RawEdge]:
		"""Edges whose source and target are both nodes of this level."""
		return [edge for edge in self.edges if edge.source in self.by_id and edge.target in self.by_id]


def build_view(data: dict[str, Any]) -> GraphLevel:
	"""The lenient graph view of a definition document; never raises."""
	return _build_level(data, (), 0, None)


def _build_level(
	data: dict[str, Any], parts: tuple[PointerPart, ...], depth: int, owner: RawNode | None
) -> GraphLevel:
	level = GraphLevel(parts=parts, depth=depth, owner=owner)
	raw_nodes = data.get("nodes")
	for index, raw in enumerate(raw_nodes if isinstance(raw_nodes, list) else []):
		if not isinstance(raw, dict):
			continue
		node_id = raw.get("id")
		node_type = raw.get("type")
		config = raw.get("config")
		node = RawNode(
			parts=(*parts, "nodes", index),
			id=node_id if isinstance(node_id, str) else None,
			type=node_type if isinstance(node_type, str) and node_type in NODE_TYPES else None,
			config=config if isinstance(config, dict) else {},
			level=level,
		)
		level.nodes.append(node)
		if node.id is not None:
			level.by_id.setdefault(node.id, node)
		body = node.config.get("body")
		if node.type in _BODY_TYPES and isinstance(body, dict):
			node.body = _build_level(body, (*node.parts, "config", "body"), depth + 1, node)
	raw_edges = data.get("edges")
	for index, raw in enumerate(raw_edges if isinstance(raw_edges, list) else []):
		if not isinstance(raw, dict):
			continue
		source, target, handle, edge_id = (
			raw.get(key) for key in ("source", "target", "source_handle", "id")
		)
		level.edges.append(
			RawEdge(
				parts=(*parts, "edges", index),
				source=source if isinstance(source, str) else None,
				target=target if isinstance(target, str) else None,
				# A malformed handle is a shape error already; None keeps it out of the graph checks.
				handle="out" if handle is None else handle if isinstance(handle, str) and handle else None,
				condition=raw.get("condition"),
				id=edge_id if isinstance(edge_id, str) else None,
			)
		)
	return level


def check_graph(top: GraphLevel) -> list[DefinitionError]:
	"""Every graph rule, on every level.

	Returns:
		The errors found, in no particular order.
	"""
	errors = [*_check_limits(top), *_check_unique_ids(top)]
	for level in top.levels():
		errors += _check_start(level)
		errors += _check_endpoints(level, top)
		errors += _check_handles(level)
		errors += _check_duplicate_edges(level)
		errors += _check_switch_cases(level)
		cycles = _check_cycles(level)
		errors += cycles
		entry, entry_errors = _entry(level)
		errors += entry_errors
		if entry is not None:
			reachable = _reachable(level, entry)
			errors += _check_unreachable(level, entry, reachable)
			if not cycles:
				errors += _check_joins(level, entry, reachable)
	return errors


def _check_limits(top: GraphLevel) -> Iterator[DefinitionError]:
	levels = list(top.levels())
	node_count = sum(len(level.nodes) for level in levels)
	edge_count = sum(len(level.edges) for level in levels)
	if node_count > LIMITS.max_nodes:
		yield DefinitionError(
			"/nodes",
			"limit_exceeded",
			f"the definition has {node_count} nodes (bodies included); the limit is {LIMITS.max_nodes} (max_nodes)",
			"split it into sub-workflows",
		)
	if edge_count > LIMITS.max_edges:
		yield DefinitionError(
			"/edges",
			"limit_exceeded",
			f"the definition has {edge_count} edges (bodies included); the limit is {LIMITS.max_edges} (max_edges)",
			"split it into sub-workflows",
		)
	for level in levels:
		if level.depth == LIMITS.max_body_depth + 1 and level.owner is not None:
			yield DefinitionError(
				level.pointer,
				"limit_exceeded",
				f"the body of {level.owner.label} is nested {level.depth} deep; the limit is "
				f"{LIMITS.max_body_depth} (max_body_depth)",
				"move the inner loop or map into a sub-workflow",
			)


def _check_unique_ids(top: GraphLevel) -> Iterator[DefinitionError]:
	seen: dict[str, RawNode] = {}
	for level in top.levels():
		for node in level.nodes:
			if node.id is None:
				continue
			first = seen.setdefault(node.id, node)
			if first is not node:
				yield DefinitionError(
					node.at("id"),
					"duplicate_node_id",
					f"node id {node.id!r} is already used by the node at {first.pointer}",
					"give every node, including those inside bodies, its own id",
				)
	seen_edges: dict[str, RawEdge] = {}
	for level in top.levels():
		for edge in level.edges:
			if edge.id is None:
				continue
			first_edge = seen_edges.setdefault(edge.id, edge)
			if first_edge is not edge:
				yield DefinitionError(
					edge.at("id"),
					"duplicate_edge_id",
					f"edge id {edge.id!r} is already used by the edge at {first_edge.pointer}",
					"give every edge its own id, or leave the id out",
				)


def _check_start(level: GraphLevel) -> Iterator[DefinitionError]:
	starts = [node for node in level.nodes if node.type == "start"]
	if level.owner is not None:
		for node in starts:
			yield DefinitionError(
				node.at("type"),
				"start_in_body",
				f"{node.label} is inside the body of {level.owner.label}; bodies have no start node",
				"remove it: a body starts at its one node without incoming edges",
			)
		return
	if not starts:
		yield DefinitionError(
			"/nodes", "missing_start", "the definition has no start node", "add a node with type 'start'"
		)
	for node in starts[1:]:
		yield DefinitionError(
			node.at("type"),
			"multiple_start",
			f"{node.label} is a second start node (the first is {starts[0].id!r})",
			"keep one start node and connect it to every first step",
		)
	for node in starts:
		for edge in level.edges:
			if edge.target == node.id and edge.source in level.by_id:
				yield DefinitionError(
					edge.at("target"),
					"start_has_incoming",
					f"edge {edge.source} -> {edge.target} enters the start node",
					"nothing may lead back to the start; to repeat steps use a loop node",
				)


def _find_elsewhere(top: GraphLevel, node_id: str) -> RawNode | None:
	for level in top.levels():
		if node_id in level.by_id:
			return level.by_id[node_id]
	return None


def _check_endpoints(level: GraphLevel, top: GraphLevel) -> Iterator[DefinitionError]:
	where = "the top level" if level.owner is None else f"the body of {level.owner.label}"
	for edge in level.edges:
		for end in ("source", "target"):
			node_id = edge.source if end == "source" else edge.target
			if node_id is None or node_id in level.by_id:
				continue
			other = _find_elsewhere(top, node_id)
			if other is None:
				yield DefinitionError(
					edge.at(end),
					"unknown_node",
					f"edge {end} {node_id!r} is not a node",
					f"use the id of a node in {where}",
				)
			else:
				inside = (
					"the top level" if other.level.owner is None else f"the body of {other.level.owner.label}"
				)
				yield DefinitionError(
					edge.at(end),
					"edge_crosses_body",
					f"edge {end} {node_id!r} is in {inside}, but the edge is in {where}",
					"edges connect nodes of the same level; a body's result leaves through its loop or map node",
				)


def _handle_never_taken(node: RawNode, handle: str) -> str | None:
	"""Why an edge on a valid handle can never be taken, or None."""
	config = node.config
	if node.type == "wait_for_event" and handle == "timeout" and config.get("timeout_seconds") is None:
		return "it has no timeout_seconds"
	if node.type == "approval" and handle == "timeout" and config.get("deadline_seconds") is None:
		return "it has no deadline_seconds"
	if (
		node.type == "sub_workflow"
		and handle == "error"
		and config.get("on_failure", "fail") != "error_branch"
	):
		return "its on_failure is not 'error_branch'"
	return None


def _check_handles(level: GraphLevel) -> Iterator[DefinitionError]:
	error_edges: set[str] = set()
	for edge in level.edges:
		node = level.by_id.get(edge.source or "")
		if node is None or node.type is None or edge.handle is None:
			continue
		if node.type in TERMINAL_NODE_TYPES:
			yield DefinitionError(
				edge.pointer,
				"terminal_has_outgoing",
				f"{node.label} ends the run, so it cannot have outgoing edges (edge to {edge.target!r})",
				"remove the edge, or use a different node type",
			)
			continue
		handles = source_handles(node.type, node.case_ids())
		if edge.handle not in handles:
			missing = "no default handle 'out'" if edge.handle == "out" else f"no handle {edge.handle!r}"
			yield DefinitionError(
				edge.at("source_handle"),
				"invalid_handle",
				f"{node.label} has {missing}; its handles are: {', '.join(handles)}",
				f"set source_handle to one of: {', '.join(handles)}",
			)
			continue
		if edge.handle == "error":
			error_edges.add(node.id or "")
		reason = _handle_never_taken(node, edge.handle)
		if reason is not None:
			yield DefinitionError(
				edge.at("source_handle"),
				"handle_never_taken",
				f"the {edge.handle!r} edge of {node.label} is never taken: {reason}",
				"set the missing option, or remove the edge",
			)
	for node in level.nodes:
		if (
			node.type == "sub_workflow"
			and node.config.get("on_failure") == "error_branch"
			and node.id not in error_edges
		):
			yield DefinitionError(
				node.at("config", "on_failure"),
				"missing_error_branch",
				f"{node.label} routes failures to its 'error' handle, but no edge leaves it",
				"add an edge with source_handle 'error', or change on_failure",
			)


def _check_duplicate_edges(level: GraphLevel) -> Iterator[DefinitionError]:
	seen: set[tuple[str, str, str]] = set()
	unconditioned: dict[tuple[str, str], RawEdge] = {}
	for edge in level.edges:
		if edge.source is None or edge.target is None or edge.handle is None:
			continue
		key = (edge.source, edge.handle, edge.target)
		if key in seen:
			yield DefinitionError(
				edge.pointer,
				"duplicate_edge",
				f"edge {edge.source} -> {edge.target} on handle {edge.handle!r} appears twice",
				"remove one of them",
			)
			continue
		seen.add(key)
		source = level.by_id.get(edge.source)
		if edge.conditioned or source is None or source.type == "parallel":
			continue
		first = unconditioned.setdefault((edge.source, edge.handle), edge)
		if first is not edge:
			yield DefinitionError(
				edge.pointer,
				"duplicate_unconditioned_edge",
				f"{source.label} has two edges without a condition on handle {edge.handle!r} "
				f"(to {first.target!r} and {edge.target!r}); only the first would ever be taken",
				"give one of them a condition, or put a parallel node first to run both",
			)


def _check_switch_cases(level: GraphLevel) -> Iterator[DefinitionError]:
	for node in level.nodes:
		if node.type != "switch" or not isinstance(node.config.get("cases"), list):
			continue
		seen: set[str] = set()
		for index, case in enumerate(node.config["cases"]):
			case_id = case.get("id") if isinstance(case, dict) else None
			if not isinstance(case_id, str):
				continue
			if case_id in seen:
				yield DefinitionError(
					node.at("config", "cases", index, "id"),
					"duplicate_case_id",
					f"{node.label} has two cases with id {case_id!r}",
					"give every case its own id; edges name the case they leave from",
				)
			seen.add(case_id)


def _successors(level: GraphLevel) -> dict[str, list[RawEdge]]:
	result: dict[str, list[RawEdge]] = {node_id: [] for node_id in level.by_id}
	for edge in level.linked_edges():
		result[edge.source or ""].append(edge)
	return result


def _check_cycles(level: GraphLevel) -> list[DefinitionError]:
	successors = _successors(level)
	state: dict[str, int] = dict.fromkeys(level.by_id, 0)  # 0 new, 1 on the path, 2 done
	errors: list[DefinitionError] = []
	for root in level.by_id:
		if state[root]:
			continue
		path: list[str] = [root]
		stack: list[Iterator[RawEdge]] = [iter(successors[root])]
		state[root] = 1
		while stack:
			edge = next(stack[-1], None)
			if edge is None:
				stack.pop()
				state[path.pop()] = 2
				continue
			target = edge.target or ""
			if state[target] == 1:
				cycle = [*path[path.index(target) :], target]
				errors.append(
					DefinitionError(
						edge.pointer,
						"cycle",
						f"edges form a cycle: {' -> '.join(cycle)}",
						"a definition has no cycles; to repeat steps, put them in the body of a loop node",
					)
				)
			elif state[target] == 0:
				state[target] = 1
				path.append(target)
				stack.append(iter(successors[target]))
	return errors


def _entry(level: GraphLevel) -> tuple[RawNode | None, list[DefinitionError]]:
	if level.owner is None:
		starts = [node for node in level.nodes if node.type == "start" and node.id is not None]
		return (starts[0] if len(starts) == 1 else None), []
	owner = level.owner
	if not level.nodes:
		return None, [
			DefinitionError(
				level.pointer,
				"empty_body",
				f"the body of {owner.label} has no nodes",
				"add the steps to repeat",
			)
		]
	targets = {edge.target for edge in level.linked_edges()}
	entries = [node for node in level.by_id.values() if node.id not in targets]
	if len(entries) == 1:
		return entries[0], []
	if not entries:
		return None, [
			DefinitionError(
				level.pointer,
				"body_without_entry",
				f"every node in the body of {owner.label} has an incoming edge, so it has no entry",
				"the body starts at its one node without incoming edges; remove the edge into the first step",
			)
		]
	names = ", ".join(repr(node.id) for node in entries)
	return None, [
		DefinitionError(
			level.pointer,
			"body_multiple_entries",
			f"the body of {owner.label} has {len(entries)} nodes without incoming edges ({names})",
			"a body starts at its one node without incoming edges: connect the others, or put a "
			"parallel node first",
		)
	]


def _reachable(level: GraphLevel, entry: RawNode) -> list[str]:
	"""Node ids reachable from the entry, in breadth-first order."""
	successors = _successors(level)
	order = [entry.id or ""]
	seen = set(order)
	queue = deque(order)
	while queue:
		for edge in successors[queue.popleft()]:
			target = edge.target or ""
			if target not in seen:
				seen.add(target)
				order.append(target)
				queue.append(target)
	return order


def _check_unreachable(level: GraphLevel, entry: RawNode, reachable: list[str]) -> Iterator[DefinitionError]:
	seen = set(reachable)
	origin = "the start node" if level.owner is None else f"the entry of the body of {level.owner.label}"
	for node_id, node in level.by_id.items():
		if node_id not in seen:
			yield DefinitionError(
				node.pointer,
				"unreachable",
				f"{node.label} cannot be reached from {origin} ({entry.id!r})",
				"connect an edge to it, or delete it",
			)


def _topological(level: GraphLevel, reachable: list[str]) -> list[str]:
	"""Reachable node ids in topological order (the level has no cycles)."""
	members = set(reachable)
	edges = [edge for edge in level.linked_edges() if edge.source in members]
	indegree = Counter(edge.target for edge in edges)
	successors = _successors(level)
	ready = deque(node_id for node_id in reachable if indegree[node_id] == 0)
	order: list[str] = []
	while ready:
		node_id = ready.popleft()
		order.append(node_id)
		for edge in successors[node_id]:
			target = edge.target or ""
			indegree[target] -= 1
			if indegree[target] == 0:
				ready.append(target)
	return order


def _dominators(level: GraphLevel, order: list[str]) -> dict[str, set[str]]:
	"""For each reachable node, the nodes on every path from the entry to it (itself included)."""
	predecessors: dict[str, list[str]] = {node_id: [] for node_id in order}
	for edge in level.linked_edges():
		if edge.source in predecessors and edge.target in predecessors:
			predecessors[edge.target or ""].append(edge.source or "")
	dominators: dict[str, set[str]] = {}
	for node_id in order:
		sets = [dominators[pred] for pred in predecessors[node_id]]
		dominators[node_id] = (set.intersection(*sets) if sets else set()) | {node_id}
	return dominators


def _descendants(level: GraphLevel, start: str) -> set[str]:
	successors = _successors(level)
	seen: set[str] = set()
	queue = deque([start])
	while queue:
		for edge in successors[queue.popleft()]:
			target = edge.target or ""
			if target not in seen:
				seen.add(target)
				queue.append(target)
	return seen


def _check_joins(level: GraphLevel, entry: RawNode, reachable: list[str]) -> Iterator[DefinitionError]:
	members = set(reachable)
	joins = [node for node in level.nodes if node.type == "join" and node.id in members]
	if not joins:
		return
	order = _topological(level, reachable)
	position = {node_id: index for index, node_id in enumerate(order)}
	dominators = _dominators(level, order)
	for join in joins:
		join_id = join.id or ""
		if level.by_id[join_id] is not join:
			continue
		explicit = join.config.get("fork")
		if isinstance(explicit, str):
			fork = level.by_id.get(explicit)
			if fork is None or fork.type != "parallel":
				what = "not a node at this level" if fork is None else f"a {fork.type or 'unknown'} node"
				yield DefinitionError(
					join.at("config", "fork"),
					"invalid_fork",
					f"{join.label} names fork {explicit!r}, which is {what}",
					"set fork to the id of the parallel node whose branches meet here, or leave it out",
				)
				continue
		else:
			candidates = [
				node_id
				for node_id in dominators[join_id] - {join_id}
				if level.by_id[node_id].type == "parallel"
			]
			if not candidates:
				yield DefinitionError(
					join.pointer,
					"join_without_fork",
					f"{join.label} has no matching fork: no parallel node lies on every path to it",
					"add a parallel node that starts the branches meeting here, or set config.fork",
				)
				continue
			fork = level.by_id[max(candidates, key=position.__getitem__)]
		yield from _check_join_branches(level, join, fork, dominators)


def _check_join_branches(
	level: GraphLevel, join: RawNode, fork: RawNode, dominators: dict[str, set[str]]
) -> Iterator[DefinitionError]:
	fork_id, join_id = fork.id or "", join.id or ""
	inside = _descendants(level, fork_id) | {fork_id}
	stray = [edge for edge in level.linked_edges() if edge.target == join_id and edge.source not in inside]
	for edge in stray:
		yield DefinitionError(
			edge.pointer,
			"join_branch_outside_fork",
			f"edge {edge.source} -> {join_id} enters {join.label}, but {edge.source!r} is not on a branch "
			f"of its fork {fork_id!r}",
			"a join only collects branches of its parallel node; route this edge elsewhere or set config.fork",
		)
	if not stray and fork_id not in dominators[join_id]:
		yield DefinitionError(
			join.at("config", "fork"),
			"join_fork_not_dominating",
			f"{join.label} can be reached without passing its fork {fork_id!r}",
			"make every path to the join go through the fork, or pick another fork",
		)
	n = join.config.get("n")
	if join.config.get("mode") == "n_of_m" and isinstance(n, int) and not isinstance(n, bool):
		branches = [
			edge
			for edge in level.linked_edges()
			if edge.source == fork_id
			and (edge.target == join_id or join_id in _descendants(level, edge.target or ""))
		]
		if n > len(branches):
			yield DefinitionError(
				join.at("config", "n"),
				"join_n_too_large",
				f"{join.label} waits for {n} branches, but its fork {fork_id!r} has {len(branches)} branch(es) "
				"leading to it",
				f"set n to at most {len(branches)}, or add branches",
			)
