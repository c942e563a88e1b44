"""Diffs between two definition documents."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, given, settings

from tests.dsl import factories as f
from tests.dsl.strategies import json_values, mutated_definitions
from workflows.dsl import FieldChange, diff_definitions


def _changed(doc: dict[str, Any]) -> dict[str, Any]:
	return copy.deepcopy(doc)


def test_identical_documents_have_an_empty_diff() -> None:
	diff = diff_definitions(f.kitchen_sink(), f.kitchen_sink())
	assert diff.is_empty
	assert diff.to_dict() == {
		"is_empty": True,
		"nodes": {"added": [], "removed": [], "changed": []},
		"edges": {"added": [], "removed": [], "changed": []},
		"fields": [],
	}


def test_node_added_and_removed() -> None:
	old = f.linear(f.set_("a"))
	new = f.linear(f.set_("b"))
	diff = diff_definitions(old, new)
	assert [node.to_dict() for node in diff.nodes_added] == [
		{"id": "b", "type": "set", "parent": None, "pointer": "/nodes/1"}
	]
	assert [node.id for node in diff.nodes_removed] == ["a"]
	assert {(edge.source, edge.target) for edge in diff.edges_added} == {("start", "b"), ("b", "end")}
	assert {(edge.source, edge.target) for edge in diff.edges_removed} == {("start", "a"), ("a", "end")}
	assert not diff.is_empty


def test_field_level_changes_as_pointers() -> None:
	old = f.linear(f.task("t", retry={"max_attempts": 2}, input={"url": "a", "drop": 1}))
	new = _changed(old)
	config = new["nodes"][1]["config"]
	config["retry"]["max_attempts"] = 5
	config["input"]["url"] = "b"
	del config["input"]["drop"]
	config["timeout_seconds"] = 10
	diff = diff_definitions(old, new)
	assert len(diff.nodes_changed) == 1
	change = diff.nodes_changed[0]
	assert (change.id, change.type, change.moved) == ("t", "task", False)
	# In document order: the factory writes retry before input.
	assert [item.to_dict() for item in change.changes] == [
		{"pointer": "/config/retry/max_attempts", "op": "replace", "old": 2, "new": 5},
		{"pointer": "/config/input/url", "op": "replace", "old": "a", "new": "b"},
		{"pointer": "/config/input/drop", "op": "remove", "old": 1},
		{"pointer": "/config/timeout_seconds", "op": "add", "new": 10},
	]


def test_list_changes_item_by_item() -> None:
	old = f.definition(f.start(), f.switch("s", ("a", ".a"), ("b", ".b")), edges=[f.edge("start", "s")])
	new = _changed(old)
	new["nodes"][1]["config"]["cases"][0]["condition"] = ".x"
	new["nodes"][1]["config"]["cases"].append({"id": "c", "condition": ".c"})
	changes = diff_definitions(old, new).nodes_changed[0].changes
	assert [(item.pointer, item.op) for item in changes] == [
		("/config/cases/0/condition", "replace"),
		("/config/cases/2", "add"),
	]
	shrunk = diff_definitions(new, old).nodes_changed[0].changes
	assert [(item.pointer, item.op) for item in shrunk] == [
		("/config/cases/0/condition", "replace"),
		("/config/cases/2", "remove"),
	]


def test_json_equality_of_numbers_but_not_booleans() -> None:
	old = f.linear(f.set_("s", {"n": 1, "flag": 1}))
	new = f.linear(f.set_("s", {"n": 1.0, "flag": True}))
	changes = diff_definitions(old, new).nodes_changed[0].changes
	assert [item.pointer for item in changes] == ["/config/values/flag"]


def test_type_change_of_a_value() -> None:
	old = f.linear(f.set_("s", {"v": [1]}))
	new = f.linear(f.set_("s", {"v": {"0": 1}}))
	assert diff_definitions(old, new).nodes_changed[0].changes == (
		FieldChange("/config/values/v", "replace", old=[1], new={"0": 1}),
	)


def test_body_nodes_are_diffed_one_by_one() -> None:
	old = f.linear(f.loop("l", f.body([f.set_("a", 1)])))
	new = f.linear(f.loop("l", f.body([f.set_("a", 2), f.set_("b")], [f.edge("a", "b")])))
	diff = diff_definitions(old, new)
	# The loop itself did not change; its body's nodes and edges did.
	assert [node.id for node in diff.nodes_changed] == ["a"]
	assert [node.to_dict() for node in diff.nodes_added] == [
		{"id": "b", "type": "set", "parent": "l", "pointer": "/nodes/1/config/body/nodes/1"}
	]
	assert [edge.to_dict() for edge in diff.edges_added] == [
		{"source": "a", "source_handle": "out", "target": "b", "pointer": "/nodes/1/config/body/edges/0"}
	]


def test_node_moved_into_a_body() -> None:
	old = f.linear(f.set_("a"), f.loop("l", f.body([f.set_("x")])))
	new = f.linear(f.loop("l", f.body([f.set_("x"), f.set_("a")], [f.edge("x", "a")])))
	change = next(node for node in diff_definitions(old, new).nodes_changed if node.id == "a")
	assert change.moved
	assert change.changes == ()
	assert change.to_dict()["parent"] == {"old": None, "new": "l"}


def test_edge_changes_keyed_by_source_handle_target() -> None:
	old = f.definition(
		f.start(),
		f.task("t"),
		f.end(),
		f.fail(),
		edges=[f.edge("start", "t"), f.edge("t", "end"), f.edge("t", "fail", "error")],
	)
	new = _changed(old)
	new["edges"][1]["condition"] = ".ok"
	new["edges"][1]["label"] = "ok"
	new["edges"][2]["source_handle"] = "out"
	new["edges"][2]["condition"] = ".bad"
	diff = diff_definitions(old, new)
	assert [change.to_dict() for change in diff.edges_changed] == [
		{
			"source": "t",
			"source_handle": "out",
			"target": "end",
			"changes": [
				{"pointer": "/condition", "op": "add", "new": ".ok"},
				{"pointer": "/label", "op": "add", "new": "ok"},
			],
		}
	]
	assert [(edge.source, edge.source_handle, edge.target) for edge in diff.edges_added] == [
		("t", "out", "fail")
	]
	assert [(edge.source, edge.source_handle, edge.target) for edge in diff.edges_removed] == [
		("t", "error", "fail")
	]


def test_top_level_fields() -> None:
	old = f.linear()
	new = f.linear() | {
		"defaults": {"priority": 9},
		"outputs": {"x": "${ .a }"},
		"input_schema": {"type": "object"},
	}
	diff = diff_definitions(old, new)
	assert [(item.pointer, item.op) for item in diff.fields_changed] == [
		("/defaults", "add"),
		("/outputs", "add"),
		("/input_schema", "add"),
	]
	again = diff_definitions(new, new | {"defaults": {"priority": 8}})
	assert [item.to_dict() for item in again.fields_changed] == [
		{"pointer": "/defaults/priority", "op": "replace", "old": 9, "new": 8}
	]


def test_positions_can_be_ignored() -> None:
	old = f.linear(f.set_("a") | {"position": {"x": 0, "y": 0}})
	new = f.linear(f.set_("a") | {"position": {"x": 10, "y": 0}})
	assert [item.pointer for item in diff_definitions(old, new).nodes_changed[0].changes] == ["/position/x"]
	assert diff_definitions(old, new, ignore_positions=True).is_empty


def test_invalid_drafts_are_diffed_by_position() -> None:
	old = {
		"nodes": [{"type": "set"}, "junk", {"id": "a"}, {"id": "a", "type": "x"}],
		"edges": [{"source": 1}, 5],
	}
	new = {"nodes": [{"type": "end"}, {"id": "a"}], "edges": "nope"}
	diff = diff_definitions(old, new)
	assert [node.id for node in diff.nodes_changed] == ["@/nodes/0"]
	assert [node.id for node in diff.nodes_removed] == ["@/nodes/3"]
	assert [(edge.source, edge.target) for edge in diff.edges_removed] == [(None, None)]
	not_objects: list[Any] = ["x", []]
	assert diff_definitions(*not_objects).is_empty


def test_duplicate_edges_are_paired_in_order() -> None:
	old = f.definition(
		f.start(),
		f.end(),
		edges=[f.edge("start", "end", condition=".a"), f.edge("start", "end", condition=".b")],
	)
	new = f.definition(f.start(), f.end(), edges=[f.edge("start", "end", condition=".a")])
	diff = diff_definitions(old, new)
	assert [edge.pointer for edge in diff.edges_removed] == ["/edges/1"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_definitions(), mutated_definitions())
def test_any_two_drafts_give_a_json_serialisable_diff(old: Any, new: Any) -> None:
	old = old if isinstance(old, dict) else {"value": old}
	new = new if isinstance(new, dict) else {"value": new}
	diff = diff_definitions(old, new)
	json.dumps(diff.to_dict())
	assert diff_definitions(old, old).is_empty
	assert diff.is_empty == (diff_definitions(new, old).is_empty)


@settings(max_examples=40, deadline=None)
@given(json_values)
def test_any_value_equals_itself_and_differs_from_a_wrapped_copy(value: Any) -> None:
	assert diff_definitions({"outputs": value}, {"outputs": copy.deepcopy(value)}).is_empty
	diff = diff_definitions({"outputs": value}, {"outputs": [value]})
	assert not diff.is_empty
	assert diff.fields_changed[0].pointer.startswith("/outputs")
