"""Limits: each one, just under and just over, with an error that names it."""

from __future__ import annotations

from typing import Any

from tests.dsl import factories as f
from tests.dsl.factories import the_error
from workflows.dsl import LIMITS, validate_definition


def _chain_of(count: int) -> dict[str, Any]:
	"""start -> n1 -> ... -> n<count-1>: ``count`` nodes in all."""
	nodes = [f.start(), *(f.set_(f"n{index}") for index in range(1, count))]
	return f.definition(*nodes)


def test_max_nodes_is_allowed() -> None:
	assert validate_definition(_chain_of(LIMITS.max_nodes)).ok


def test_one_node_over_the_limit() -> None:
	# Given 2,001 nodes
	result = validate_definition(_chain_of(LIMITS.max_nodes + 1))
	# Then the limit is named, and it is the only problem
	error = the_error(result, "limit_exceeded")
	assert error.pointer == "/nodes"
	assert "2001 nodes" in error.message
	assert "max_nodes" in error.message
	assert "sub-workflows" in error.hint
	assert len(result.errors) == 1


def test_nodes_in_bodies_count_towards_the_limit() -> None:
	half = LIMITS.max_nodes // 2
	inner = f.body(
		[f.set_(f"b{index}") for index in range(half)], f.chain(*(f"b{index}" for index in range(half)))
	)
	doc = _chain_of(half)
	doc["nodes"].append(f.map_("m", inner))
	doc["edges"].append(f.edge(f"n{half - 1}", "m"))
	assert the_error(validate_definition(doc), "limit_exceeded").pointer == "/nodes"


def test_too_many_edges() -> None:
	doc = f.definition(
		f.start(), f.set_("a"), edges=[f.edge("start", "a", condition=".x")] * (LIMITS.max_edges + 1)
	)
	error = the_error(validate_definition(doc), "limit_exceeded")
	assert error.pointer == "/edges"
	assert "max_edges" in error.message


def test_document_over_two_megabytes() -> None:
	# Given a document just over 2 MiB of JSON
	doc = f.linear(f.set_("big", "x" * LIMITS.max_document_bytes))
	# Then validation stops at once with the size error
	result = validate_definition(doc)
	assert [(error.pointer, error.code) for error in result.errors] == [("", "limit_exceeded")]
	assert "max_document_bytes" in result.errors[0].message


def test_document_size_is_measured_in_utf8_bytes() -> None:
	# 'é' is two bytes: 1.1 M of them are over 2 MiB although under 2 M characters
	doc = f.linear(f.set_("big", "é" * (LIMITS.max_document_bytes // 2 + 1)))
	assert validate_definition(doc).errors[0].code == "limit_exceeded"


def _nested(depth: int) -> dict[str, Any]:
	"""Loops nested ``depth`` deep, the innermost body holding one set node."""
	inner = f.body([f.set_(f"leaf{depth}")])
	for level in range(depth, 0, -1):
		inner = f.body([f.loop(f"loop{level}", inner)])
	return f.linear(*inner["nodes"])


def test_body_nesting_at_the_limit_is_allowed() -> None:
	assert validate_definition(_nested(LIMITS.max_body_depth)).ok


def test_body_nesting_depth_six() -> None:
	result = validate_definition(_nested(LIMITS.max_body_depth + 1))
	error = the_error(result, "limit_exceeded")
	assert error.pointer == "/nodes/1" + "/config/body/nodes/0" * 5 + "/config/body"
	assert "loop 'loop6'" in error.message
	assert "max_body_depth" in error.message


def test_json_nesting_guard() -> None:
	deep: Any = "leaf"
	for _ in range(LIMITS.max_json_depth + 1):
		deep = [deep]
	result = validate_definition(f.linear(f.set_("s", deep)))
	assert [error.code for error in result.errors] == ["limit_exceeded"]
	assert "max_json_depth" in result.errors[0].message


def test_name_over_the_limit() -> None:
	doc = f.linear(f.set_("s") | {"name": "n" * (LIMITS.max_name_length + 1)})
	error = the_error(validate_definition(doc), "limit_exceeded")
	assert error.pointer == "/nodes/1/name"
	assert "max_name_length" in error.message
	assert validate_definition(f.linear(f.set_("s") | {"name": "n" * LIMITS.max_name_length})).ok


def test_description_over_the_limit() -> None:
	doc = f.linear(f.set_("s") | {"description": "d" * (LIMITS.max_description_length + 1)})
	assert "max_description_length" in the_error(validate_definition(doc), "limit_exceeded").message


def test_node_id_over_the_limit() -> None:
	doc = f.definition(f.start(), f.set_("i" * (LIMITS.max_node_id_length + 1)), edges=[])
	error = next(error for error in validate_definition(doc).errors if error.code == "limit_exceeded")
	assert error.pointer == "/nodes/1/id"
	assert "max_node_id_length" in error.message
