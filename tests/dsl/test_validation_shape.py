"""Shape errors: Pydantic's errors translated into pointers, stable codes, messages and hints."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.dsl import factories as f
from tests.dsl.factories import codes, the_error
from workflows.dsl import NODE_TYPES, validate_definition


def test_unknown_node_type_lists_the_known_types() -> None:
	# Given a node with a misspelt type
	doc = f.linear(f.node("x", "taks", {}))
	# When validated
	error = the_error(validate_definition(doc), "unknown_node_type")
	# Then the pointer is its type, the message lists every type, the hint suggests one
	assert error.pointer == "/nodes/1/type"
	assert "unknown node type 'taks'; known types: approval, end, fail," in error.message
	assert all(node_type in error.message for node_type in NODE_TYPES)
	assert error.message.startswith("node 'x': ")
	assert error.hint.startswith("did you mean 'task'?")


def test_node_without_type() -> None:
	doc = f.linear({"id": "x"})
	error = the_error(validate_definition(doc), "missing_node_type")
	assert error.pointer == "/nodes/1/type"
	assert "known types" in error.message


def test_missing_required_field() -> None:
	doc = f.linear(f.node("t", "task", {"action": "request"}))
	error = the_error(validate_definition(doc), "required")
	assert error.pointer == "/nodes/1/config/connector"
	assert error.message == "node 't': 'connector' is required"
	assert "http" in error.hint


def test_missing_schema_version() -> None:
	doc = f.linear()
	del doc["schema_version"]
	error = the_error(validate_definition(doc), "required")
	assert error.pointer == "/schema_version"


def test_unknown_field_suggests_the_closest() -> None:
	doc = f.linear(f.task("t", retries=3))
	error = the_error(validate_definition(doc), "unknown_field")
	assert error.pointer == "/nodes/1/config/retries"
	assert "task config" in error.message
	assert error.hint.startswith("did you mean 'retry'?")
	assert "allowed here: action, compensation" in error.hint


def test_unknown_top_level_field() -> None:
	error = the_error(validate_definition(f.linear() | {"name": "x"}), "unknown_field")
	assert error.pointer == "/name"
	assert "definition" in error.message


def test_unknown_field_on_a_node_named_like_its_type() -> None:
	# The discriminator tag in Pydantic's loc must not be confused with a key of the same name.
	doc = f.linear(f.set_("s") | {"set": 1})
	error = the_error(validate_definition(doc), "unknown_field")
	assert error.pointer == "/nodes/1/set"


def test_wrong_type() -> None:
	doc = f.linear(f.task("t", timeout_seconds="30"))
	error = the_error(validate_definition(doc), "invalid_type")
	assert error.pointer == "/nodes/1/config/timeout_seconds"
	assert error.message == "node 't': 'timeout_seconds' should be an integer, not a string"
	assert error.hint == "use an integer"


def test_node_that_is_not_an_object() -> None:
	doc = f.definition(f.start(), edges=[])
	doc["nodes"].append("oops")
	error = the_error(validate_definition(doc), "invalid_type")
	assert error.pointer == "/nodes/1"
	assert error.message == "item 1 of 'nodes' should be an object, not a string"


def test_union_members_merge_into_one_error() -> None:
	doc = f.linear(f.sub_workflow("sw", version=[2]))
	error = the_error(validate_definition(doc), "invalid_type")
	assert error.pointer == "/nodes/1/config/version"
	assert "should be an integer or 'latest', not an array" in error.message


def test_literal_value() -> None:
	doc = f.linear(f.task("t", queue="fast"))
	error = the_error(validate_definition(doc), "invalid_value")
	assert error.pointer == "/nodes/1/config/queue"
	assert error.hint == "use 'steps' or 'steps.cpu'"


def test_out_of_range() -> None:
	doc = f.linear() | {"defaults": {"priority": 10}}
	error = the_error(validate_definition(doc), "out_of_range")
	assert error.pointer == "/defaults/priority"
	assert "at most 9" in error.message


def test_too_short_list() -> None:
	doc = f.definition(f.start(), f.node("s", "switch", {"cases": []}))
	error = the_error(validate_definition(doc), "too_short")
	assert error.pointer == "/nodes/1/config/cases"


def test_wrong_schema_version() -> None:
	error = the_error(validate_definition(f.linear() | {"schema_version": "2.0"}), "invalid_value")
	assert error.pointer == "/schema_version"


@pytest.mark.parametrize(
	("node_id", "code"),
	[("1st", "invalid_format"), ("has space", "invalid_format"), ("", "empty"), ("x" * 65, "limit_exceeded")],
)
def test_invalid_node_ids(node_id: str, code: str) -> None:
	doc = f.definition(f.start(), f.set_(node_id), edges=[])
	error = the_error(validate_definition(doc), code)
	assert error.pointer == "/nodes/1/id"
	assert error.hint


def test_node_id_at_the_limit_passes() -> None:
	node_id = "n" * 64
	assert validate_definition(f.definition(f.start(), f.set_(node_id))).ok


# --- rules local to one node (model validators) -------------------------------------


def test_join_n_of_m_needs_n() -> None:
	doc = f.linear(f.join("j", mode="n_of_m"))
	error = the_error(validate_definition(doc), "required")
	assert error.pointer == "/nodes/1/config/n"
	assert "n_of_m" in error.message


def test_join_n_only_with_n_of_m() -> None:
	error = the_error(validate_definition(f.linear(f.join("j", n=2))), "unexpected_field")
	assert error.pointer == "/nodes/1/config/n"
	assert "remove n" in error.hint


def test_wait_needs_exactly_one_of_duration_and_until() -> None:
	neither = the_error(validate_definition(f.linear(f.wait("w"))), "required")
	assert neither.pointer == "/nodes/1/config"
	both = the_error(
		validate_definition(f.linear(f.wait("w", duration=5, until="2030-01-01T00:00:00Z"))),
		"conflicting_fields",
	)
	assert both.pointer == "/nodes/1/config/until"


@pytest.mark.parametrize(
	"config",
	[
		{"duration": 5},
		{"duration": 0.5},
		{"duration": "PT1H"},
		{"duration": "${ .input.delay }"},
		{"duration": ".input.delay"},
		{"until": "2030-01-01T09:00:00+01:00"},
		{"until": ".input.deadline"},
	],
)
def test_wait_variants_pass(config: dict) -> None:
	assert validate_definition(f.linear(f.wait("w", **config))).ok


@pytest.mark.parametrize(
	("config", "code", "field"),
	[
		({"duration": -1}, "invalid_duration", "duration"),
		({"duration": "P1M"}, "invalid_duration", "duration"),
		({"duration": ""}, "empty", "duration"),
		({"until": "2030-01-01T09:00:00"}, "invalid_timestamp", "until"),
		({"until": "2030-02-30T09:00:00Z"}, "invalid_timestamp", "until"),
		({"duration": True}, "invalid_type", "duration"),
	],
)
def test_invalid_waits(config: dict, code: str, field: str) -> None:
	error = the_error(validate_definition(f.linear(f.wait("w", **config))), code)
	assert error.pointer == f"/nodes/1/config/{field}"
	assert error.hint


def test_approval_needs_assignees_or_role() -> None:
	doc = f.linear(f.node("ok", "approval", {"title": "Ship it?"}))
	error = the_error(validate_definition(doc), "required")
	assert error.pointer == "/nodes/1/config/assignees"
	assert "role" in error.hint


def test_approval_with_assignees_only_passes() -> None:
	doc = f.definition(
		f.start(),
		f.approval("ok", assignees=["alice"]),
		f.end(),
		edges=[f.edge("start", "ok"), f.edge("ok", "end", "approved")],
	)
	assert validate_definition(doc).ok


def test_approval_role_must_be_known() -> None:
	error = the_error(validate_definition(f.linear(f.approval("ok", role="boss"))), "invalid_value")
	assert error.pointer == "/nodes/1/config/role"
	assert "'operator'" in error.hint


def test_escalation_needs_a_target_and_comes_before_the_deadline() -> None:
	no_target = f.linear(f.approval("ok", escalation={"after_seconds": 60}))
	assert the_error(validate_definition(no_target), "required").pointer == "/nodes/1/config/escalation"
	late = f.linear(
		f.approval("ok", deadline_seconds=60, escalation={"after_seconds": 60, "to_role": "admin"})
	)
	error = the_error(validate_definition(late), "invalid_escalation")
	assert error.pointer == "/nodes/1/config/escalation/after_seconds"
	assert "never happens" in error.message


def test_form_schema_must_be_a_json_schema() -> None:
	doc = f.linear(f.approval("ok", form_schema={"type": "object", "properties": {"a/b": {"type": 5}}}))
	error = the_error(validate_definition(doc), "invalid_json_schema")
	assert error.pointer == "/nodes/1/config/form_schema/properties/a~1b/type"
	assert "draft 2020-12" in error.message


def test_input_schema_must_be_a_json_schema() -> None:
	error = the_error(
		validate_definition(f.linear() | {"input_schema": {"required": "x"}}), "invalid_json_schema"
	)
	assert error.pointer == "/input_schema/required"
	root = the_error(
		validate_definition(f.linear() | {"input_schema": {"type": "thing"}}), "invalid_json_schema"
	)
	assert root.pointer == "/input_schema/type"


def test_retry_intervals_must_be_ordered() -> None:
	doc = f.linear(f.task("t", retry={"initial_interval_seconds": 10, "max_interval_seconds": 5}))
	error = the_error(validate_definition(doc), "invalid_retry")
	assert error.pointer == "/nodes/1/config/retry/max_interval_seconds"


def test_retry_max_attempts_at_least_one() -> None:
	doc = f.linear(f.task("t", retry={"max_attempts": 0}))
	error = the_error(validate_definition(doc), "out_of_range")
	assert error.pointer == "/nodes/1/config/retry/max_attempts"
	assert error.message == "node 't': 'max_attempts' is 0; it must be at least 1"


def test_switch_case_cannot_be_called_default() -> None:
	doc = f.definition(f.start(), f.switch("s", ("default", ".x")))
	error = the_error(validate_definition(doc), "reserved_case_id")
	assert error.pointer == "/nodes/1/config/cases/0/id"


def test_sub_workflow_version_and_wait() -> None:
	zero = the_error(validate_definition(f.linear(f.sub_workflow("sw", version=0))), "invalid_version")
	assert zero.pointer == "/nodes/1/config/version"
	no_wait = the_error(
		validate_definition(f.linear(f.sub_workflow("sw", wait=False, on_failure="continue"))),
		"conflicting_fields",
	)
	assert no_wait.pointer == "/nodes/1/config/on_failure"
	assert validate_definition(f.linear(f.sub_workflow("sw", wait=False))).ok


@pytest.mark.parametrize(
	("make", "pointer", "code"),
	[
		(lambda: f.task("t", connector="has space"), "/nodes/1/config/connector", "invalid_format"),
		(lambda: f.sub_workflow("sw", workflow="-bad"), "/nodes/1/config/workflow", "invalid_format"),
		(lambda: f.fail(error_code="no spaces please"), "/nodes/1/config/error_code", "invalid_format"),
		(lambda: f.wait_for_event("e", event_type=""), "/nodes/1/config/event_type", "empty"),
		(lambda: f.wait_for_event("e", correlation="  "), "/nodes/1/config/correlation", "empty"),
	],
)
def test_formatted_strings(make: Callable[[], dict[str, Any]], pointer: str, code: str) -> None:
	doc = f.definition(f.start(), make())
	error = the_error(validate_definition(doc), code)
	assert error.pointer == pointer


def test_edge_shape_errors_name_the_edge() -> None:
	doc = f.definition(f.start(), f.end(), edges=[f.edge("start", "end", handle="", label=5)])
	result = validate_definition(doc)
	assert codes(result) == ["invalid_type", "empty"]
	assert result.errors[0].pointer == "/edges/0/label"
	assert result.errors[1].pointer == "/edges/0/source_handle"
	assert result.errors[0].message == "edge start -> end: 'label' should be a string, not a number"
	assert all(error.message.startswith("edge start -> end: ") for error in result.errors)


def test_every_error_is_reported_at_once() -> None:
	# Given several independent mistakes: a shape error, a graph error and a bad expression
	doc = f.definition(
		f.start(),
		f.task("t", retries=1),
		f.end(),
		edges=[f.edge("start", "t"), f.edge("t", "end", condition=".x |"), f.edge("t", "ghost")],
	)
	# Then all are reported, in document order
	result = validate_definition(doc)
	assert [(error.pointer, error.code) for error in result.errors] == [
		("/edges/1/condition", "invalid_expression"),
		("/edges/2/target", "unknown_node"),
		("/nodes/1/config/retries", "unknown_field"),
	]
	assert result.definition is None
	assert result.to_dict()["errors"][0] == result.errors[0].to_dict()
