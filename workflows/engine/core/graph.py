"""A definition's graph levels, prepared once per published version for the core."""

from __future__ import annotations

from dataclasses import dataclass

from workflows.dsl import Edge, LoopNode, MapNode, Node

__all__ = ["Level", "handle_of", "prepare"]


@dataclass(slots=True)
class Level:
	"""One graph level (the top, or a body) with what the core needs precomputed."""

	path: str
	nodes: dict[str, Node]
	edges_out: dict[str, list[Edge]]
	entry: str
	forks_of: dict[str, str]  # join id -> fork id
	incoming: dict[str, int]


def handle_of(edge: Edge) -> str:
	return edge.source_handle or "out"


def prepare(nodes: list[Node], edges: list[Edge], path: str, levels: dict[str, Level]) -> None:
	by_id = {n.id: n for n in nodes}
	out: dict[str, list[Edge]] = {n.id: [] for n in nodes}
	incoming = dict.fromkeys(by_id, 0)
	for edge in edges:
		out[edge.source].append(edge)
		incoming[edge.target] += 1
	# Conditioned edges are tried in order before unconditioned ones (the documented rule).
	for node_id, node_edges in out.items():
		out[node_id] = [e for e in node_edges if e.condition is not None] + [
			e for e in node_edges if e.condition is None
		]
	starts = [n.id for n in nodes if n.type == "start"]
	entry = starts[0] if starts else next(n.id for n in nodes if incoming[n.id] == 0)
	levels[path] = Level(path, by_id, out, entry, infer_forks(by_id, out, entry), incoming)
	for node in nodes:
		if isinstance(node, MapNode | LoopNode):
			body = node.config.body
			prepare(body.nodes, body.edges, f"{path}/{node.id}", levels)


def infer_forks(by_id: dict[str, Node], out: dict[str, list[Edge]], entry: str) -> dict[str, str]:
	"""Each join's fork: explicit, else the nearest parallel node dominating it."""
	order: list[str] = []
	seen: set[str] = set()

	def visit(node_id: str) -> None:
		if node_id in seen:
			return
		seen.add(node_id)
		for edge in out[node_id]:
			visit(edge.target)
		order.append(node_id)

	visit(entry)
	order.reverse()
	preds: dict[str, set[str]] = {n: set() for n in order}
	for node_id in order:
		for edge in out[node_id]:
			if edge.target in preds:
				preds[edge.target].add(node_id)
	dom: dict[str, set[str]] = {}
	for node_id in order:
		incoming = [dom[p] for p in preds[node_id] if p in dom]
		dom[node_id] = (set.intersection(*incoming) if incoming else set()) | {node_id}
	position = {n: i for i, n in enumerate(order)}
	forks: dict[str, str] = {}
	for node_id in order:
		node = by_id[node_id]
		if node.type != "join":
			continue
		explicit = node.config.fork
		if explicit:
			forks[node_id] = explicit
			continue
		candidates = [d for d in dom[node_id] if d != node_id and by_id[d].type == "parallel"]
		if candidates:
			forks[node_id] = max(candidates, key=position.__getitem__)
	return forks
