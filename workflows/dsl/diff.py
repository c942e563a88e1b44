"""What changed between two definition documents (two versions, or a draft and a version).

Nodes are matched by id across the whole document, bodies included, so a node moved into a
loop body is *changed* (its parent differs), not removed and added. Edges are matched by
``(source, source_handle, target)`` with a missing handle read as ``out``. Field changes are
JSON pointers relative to the node or edge (``/config/retry/max_attempts``), or to the
document for top-level fields (``/defaults/priority``); arrays are compared item by item.

Drafts may be invalid, so nothing here assumes a valid shape: a node without a string id is
matched by its position instead (``@/nodes/3``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from workflows.dsl.errors import PointerPart, pointer

__all__ = [
	"DefinitionDiff",
	"EdgeChange",
	"EdgeRef",
	"FieldChange",
	"NodeChange",
	"NodeRef",
	"diff_definitions",
]

EdgeKey = tuple[str | None, str | None, str | None]


@dataclass(frozen=True, slots=True)
class FieldChange:
	"""One changed value: ``op`` is ``add``, ``remove`` or ``replace`` (as in JSON Patch)."""

	pointer: str
	op: Literal["add", "remove", "replace"]
	old: Any = None
	new: Any = None

	def to_dict(self) -> dict[str, Any]:
		"""JSON-ready form; ``old`` is left out for ``add`` and ``new`` for ``remove``."""
		result: dict[str, Any] = {"pointer": self.pointer, "op": self.op}
		if self.op != "add":
			result["old"] = self.old
		if self.op != "remove":
			result["new"] = self.new
		return result


@dataclass(frozen=True, slots=True)
class NodeRef:
	"""A node that was added or removed.

	Attributes:
		id: The node id (``@<pointer>`` for a node without a valid id).
		type: Its type, if it has a string one.
		parent: Id of the loop or map whose body holds it; None at the top level.
		pointer: Where it is in the document that has it.
	"""

	id: str
	type: str | None
	parent: str | None
	pointer: str

	def to_dict(self) -> dict[str, Any]:
		"""JSON-ready form."""
		return {"id": self.id, "type": self.type, "parent": self.parent, "pointer": self.pointer}


@dataclass(frozen=True, slots=True)
class NodeChange:
	"""A node present in both documents whose content or place changed.

	Attributes:
		id: The node id.
		type: Its type in the new document.
		changes: Field changes, pointers relative to the node.
		old_parent: Enclosing loop or map in the old document (None: top level).
		new_parent: Enclosing loop or map in the new document.
	"""

	id: str
	type: str | None
	changes: tuple[FieldChange, ...]
	old_parent: str | None = None
	new_parent: str | None = None

	@property
	def moved(self) -> bool:
		"""Whether the node moved into, out of or between bodies."""
		return self.old_parent != self.new_parent

	def to_dict(self) -> dict[str, Any]:
		"""JSON-ready form."""
		result: dict[str, Any] = {
			"id": self.id,
			"type": self.type,
			"changes": [change.to_dict() for change in self.changes],
		}
		if self.moved:
			result["parent"] = {"old": self.old_parent, "new": self.new_parent}
		return result


@dataclass(frozen=True, slots=True)
class EdgeRef:
	"""An edge that was added or removed, by its key and its place in the document."""

	source: str | None
	source_handle: str | None
	target: str | None
	pointer: str

	def to_dict(self) -> dict[str, Any]:
		"""JSON-ready form."""
		return {
			"source": self.source,
			"source_handle": self.source_handle,
			"target": self.target,
			"pointer": self.pointer,
		}


@dataclass(frozen=True, slots=True)
class EdgeChange:
	"""An edge present in both documents whose condition, label or id changed."""

	source: str | None
	source_handle: str | None
	target: str | None
	changes: tuple[FieldChange, ...]

	def to_dict(self) -> dict[str, Any]:
		"""JSON-ready form."""
		return {
			"source": self.source,
			"source_handle": self.source_handle,
			"target": self.target,
			"changes": [change.to_dict() for change in self.changes],
		}


@dataclass(frozen=True, slots=True)
class DefinitionDiff:
	"""The difference between two definition documents."""

	nodes_added: list[NodeRef] = field(default_factory=list)
	nodes_removed: list[NodeRef] = field(default_factory=list)
	nodes_changed: list[NodeChange] = field(default_factory=list)
	edges_added: list[EdgeRef] = field(default_factory=list)
	edges_removed: list[EdgeRef] = field(default_factory=list)
	edges_changed: list[EdgeChange] = field(default_factory=list)
	fields_changed: list[FieldChange] = field(default_factory=list)
	"""Top-level fields (``input_schema``, ``outputs``, ``defaults``, ...), absolute pointers."""

	@property
	def is_empty(self) -> bool:
		"""Whether the documents are the same, as far as the diff can tell."""
		return not any(
			(
				self.nodes_added,
				self.nodes_removed,
				self.nodes_changed,
				self.edges_added,
				self.edges_removed,
				self.edges_changed,
				self.fields_changed,
			)
		)

	def to_dict(self) -> dict[str, Any]:
		"""JSON-ready form."""
		return {
			"is_empty": self.is_empty,
			"nodes": {
				"added": [node.to_dict() for node in self.nodes_added],
				"removed": [node.to_dict() for node in self.nodes_removed],
				"changed": [node.to_dict() for node in self.nodes_changed],
			},
			"edges": {
				"added": [edge.to_dict() for edge in self.edges_added],
				"removed": [edge.to_dict() for edge in self.edges_removed],
				"changed": [edge.to_dict() for edge in self.edges_changed],
			},
			"fields": [change.to_dict() for change in self.fields_changed],
		}


def diff_definitions(
	old: dict[str, Any], new: dict[str, Any], *, ignore_positions: bool = False
) -> DefinitionDiff:
	"""Compare two definition documents.

	Args:
		old: The earlier document (e.g. the published version).
		new: The later document (e.g. the draft).
		ignore_positions: Leave out designer layout changes (``/position``).

	Returns:
		The difference; ``is_empty`` when nothing changed.
	"""
	old_nodes, new_nodes = _index_nodes(old), _index_nodes(new)
	result = DefinitionDiff()
	for key, (node, parent, where) in new_nodes.items():
		if key not in old_nodes:
			result.nodes_added.append(NodeRef(key, _str(node.get("type")), parent, where))
			continue
		old_node, old_parent, _ = old_nodes[key]
		changes = [
			change
			for change in _diff_values(_without_body(old_node), _without_body(node), ())
			if not (
				ignore_positions
				and (change.pointer == "/position" or change.pointer.startswith("/position/"))
			)
		]
		if changes or old_parent != parent:
			result.nodes_changed.append(
				NodeChange(key, _str(node.get("type")), tuple(changes), old_parent, parent)
			)
	for key, (node, parent, where) in old_nodes.items():
		if key not in new_nodes:
			result.nodes_removed.append(NodeRef(key, _str(node.get("type")), parent, where))

	old_edges, new_edges = _index_edges(old), _index_edges(new)
	for key, (edge, where) in new_edges.items():
		source, handle, target, _ = key
		if key not in old_edges:
			result.edges_added.append(EdgeRef(source, handle, target, where))
			continue
		changes = _diff_values(_edge_content(old_edges[key][0]), _edge_content(edge), ())
		if changes:
			result.edges_changed.append(EdgeChange(source, handle, target, tuple(changes)))
	for key, (_edge, where) in old_edges.items():
		if key not in new_edges:
			source, handle, target, _ = key
			result.edges_removed.append(EdgeRef(source, handle, target, where))

	old_top = {key: value for key, value in _as_dict(old).items() if key not in ("nodes", "edges")}
	new_top = {key: value for key, value in _as_dict(new).items() if key not in ("nodes", "edges")}
	result.fields_changed.extend(_diff_values(old_top, new_top, ()))
	return result


def _str(value: Any) -> str | None:
	return value if isinstance(value, str) else None


def _as_dict(value: Any) -> dict[str, Any]:
	return value if isinstance(value, dict) else {}


def _levels(doc: Any) -> Iterator[tuple[dict[str, Any], tuple[PointerPart, ...], str | None]]:
	"""Each graph level: its dict, its pointer parts, and the id of the node owning it."""
	stack: list[tuple[dict[str, Any], tuple[PointerPart, ...], str | None]] = [(_as_dict(doc), (), None)]
	while stack:
		level, parts, owner = stack.pop(0)
		yield level, parts, owner
		nodes = level.get("nodes")
		for index, node in enumerate(nodes if isinstance(nodes, list) else []):
			body = _as_dict(node).get("config")
			body = _as_dict(body).get("body")
			if isinstance(body, dict):
				stack.append((body, (*parts, "nodes", index, "config", "body"), _str(node.get("id"))))


def _index_nodes(doc: Any) -> dict[str, tuple[dict[str, Any], str | None, str]]:
	index: dict[str, tuple[dict[str, Any], str | None, str]] = {}
	for level, parts, owner in _levels(doc):
		nodes = level.get("nodes")
		for position, node in enumerate(nodes if isinstance(nodes, list) else []):
			if not isinstance(node, dict):
				continue
			where = pointer((*parts, "nodes", position))
			node_id = _str(node.get("id"))
			key = node_id if node_id is not None and node_id not in index else f"@{where}"
			index[key] = (node, owner, where)
	return index


def _index_edges(
	doc: Any,
) -> dict[tuple[str | None, str | None, str | None, int], tuple[dict[str, Any], str]]:
	index: dict[tuple[str | None, str | None, str | None, int], tuple[dict[str, Any], str]] = {}
	for level, parts, _owner in _levels(doc):
		edges = level.get("edges")
		for position, edge in enumerate(edges if isinstance(edges, list) else []):
			if not isinstance(edge, dict):
				continue
			handle = edge.get("source_handle")
			base: EdgeKey = (
				_str(edge.get("source")),
				"out" if handle is None else _str(handle),
				_str(edge.get("target")),
			)
			occurrence = 0
			while (*base, occurrence) in index:
				occurrence += 1
			index[(*base, occurrence)] = (edge, pointer((*parts, "edges", position)))
	return index


def _without_body(node: dict[str, Any]) -> dict[str, Any]:
	"""The node without its body's nodes and edges, which are compared one by one."""
	config = node.get("config")
	if not isinstance(config, dict) or not isinstance(config.get("body"), dict):
		return node
	body = {key: value for key, value in config["body"].items() if key not in ("nodes", "edges")}
	return {**node, "config": {**config, "body": body}}


def _edge_content(edge: dict[str, Any]) -> dict[str, Any]:
	return {key: value for key, value in edge.items() if key not in ("source", "target", "source_handle")}


def _same(old: Any, new: Any) -> bool:
	"""JSON equality: 1 equals 1.0, but true is not 1."""
	if isinstance(old, bool) or isinstance(new, bool):
		return type(old) is type(new) and old == new
	if isinstance(old, int | float) and isinstance(new, int | float):
		return old == new
	return type(old) is type(new) and old == new


def _diff_values(old: Any, new: Any, parts: tuple[PointerPart, ...]) -> list[FieldChange]:
	"""Field changes from ``old`` to ``new``, in document order (iterative: drafts may be deep)."""
	changes: list[FieldChange] = []
	# A task is a change to report as is, or a pair of values still to compare.
	stack: list[FieldChange | tuple[Any, Any, tuple[PointerPart, ...]]] = [(old, new, parts)]
	while stack:
		task = stack.pop()
		if isinstance(task, FieldChange):
			changes.append(task)
			continue
		before, after, where = task
		pending: list[FieldChange | tuple[Any, Any, tuple[PointerPart, ...]]] = []
		if isinstance(before, dict) and isinstance(after, dict):
			for key in [*before, *(key for key in after if key not in before)]:
				if key not in after:
					pending.append(FieldChange(pointer((*where, key)), "remove", old=before[key]))
				elif key not in before:
					pending.append(FieldChange(pointer((*where, key)), "add", new=after[key]))
				else:
					pending.append((before[key], after[key], (*where, key)))
		elif isinstance(before, list) and isinstance(after, list):
			common = min(len(before), len(after))
			pending.extend((before[index], after[index], (*where, index)) for index in range(common))
			pending.extend(
				FieldChange(pointer((*where, index)), "remove", old=before[index])
				for index in range(common, len(before))
			)
			pending.extend(
				FieldChange(pointer((*where, index)), "add", new=after[index])
				for index in range(common, len(after))
			)
		elif not _same(before, after):
			pending.append(FieldChange(pointer(where), "replace", old=before, new=after))
		stack.extend(reversed(pending))
	return changes
