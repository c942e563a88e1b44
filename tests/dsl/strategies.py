"""Hypothesis strategies: JSON values, valid definitions, and mutations of them."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

from tests.dsl import factories as f
from workflows.dsl import NODE_TYPES

json_scalars = (
	st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
)

json_values = st.recursive(
	json_scalars,
	lambda children: (
		st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
	),
	max_leaves=20,
)

json_documents = st.dictionaries(st.text(max_size=10), json_values, max_size=6)

node_ids = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_-]{0,10}\Z")


@st.composite
def definitions(draw: st.DrawFn) -> dict[str, Any]:
	"""Valid definitions: a start node, then a chain of set/task/wait nodes, then an end."""
	ids = draw(
		st.lists(node_ids.filter(lambda value: value not in ("start", "end")), unique=True, max_size=6)
	)
	middle = []
	for node_id in ids:
		kind = draw(st.sampled_from(["set", "task", "wait"]))
		if kind == "set":
			middle.append(f.set_(node_id, draw(json_values)))
		elif kind == "task":
			middle.append(
				f.task(node_id, input={"url": draw(st.text(max_size=20).filter(lambda s: "${" not in s))})
			)
		else:
			middle.append(f.wait(node_id, duration=draw(st.integers(min_value=0, max_value=10**6))))
	doc = f.linear(*middle)
	for node in doc["nodes"]:
		if draw(st.booleans()):
			node["name"] = draw(st.text(max_size=30))
			node["position"] = {"x": draw(st.integers(-1000, 1000)), "y": draw(st.floats(-1e3, 1e3))}
	if draw(st.booleans()):
		doc["defaults"] = {"priority": draw(st.integers(0, 9)), "timeout_seconds": draw(st.integers(1, 3600))}
	return doc


SEEDS = [
	f.EXAMPLE,
	f.kitchen_sink(),
	f.linear(f.map_("m", f.body([f.task("inner"), f.end("inner_end")], f.chain("inner", "inner_end")))),
]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
	paths = [prefix]
	if isinstance(value, dict):
		for key, child in value.items():
			paths += _paths(child, (*prefix, key))
	elif isinstance(value, list):
		for index, child in enumerate(value):
			paths += _paths(child, (*prefix, index))
	return paths


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
	for part in path[:-1]:
		doc = doc[part]
	return doc


@st.composite
def mutated_definitions(draw: st.DrawFn) -> Any:
	"""A valid definition with a few random edits: keys dropped or replaced, wrong types, random node types."""
	doc = copy.deepcopy(draw(st.sampled_from(SEEDS) | definitions()))
	for _ in range(draw(st.integers(1, 4))):
		paths = [path for path in _paths(doc) if path]
		if not paths:
			break
		path = draw(st.sampled_from(paths))
		parent = _parent(doc, path)
		action = draw(st.sampled_from(["drop", "replace", "type", "add_key", "duplicate"]))
		if action == "drop":
			del parent[path[-1]]
		elif action == "replace":
			parent[path[-1]] = draw(json_values)
		elif action == "type" and isinstance(parent, dict) and "type" in parent:
			parent["type"] = draw(st.sampled_from(NODE_TYPES) | st.text(max_size=8))
		elif action == "add_key" and isinstance(parent, dict):
			parent[draw(st.text(max_size=8))] = draw(json_values)
		elif action == "duplicate" and isinstance(parent, list):
			parent.append(copy.deepcopy(parent[path[-1]]))
	return doc
