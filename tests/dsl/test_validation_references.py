"""References checked through a ReferenceResolver: actions, inputs, workflows, roles, users."""

from __future__ import annotations

from typing import Any

from tests.dsl import factories as f
from tests.dsl.conftest import FakeResolver
from tests.dsl.factories import codes, the_error
from workflows.dsl import ActionInfo, validate_definition


def _with_task(**config: Any) -> dict[str, Any]:
	return f.linear(f.task("t", **config))


def test_without_a_resolver_references_are_not_checked() -> None:
	assert validate_definition(_with_task(connector="nope", action="missing")).ok


def test_known_references_pass(resolver: FakeResolver) -> None:
	# Given a definition naming only things that exist
	doc = f.definition(
		f.start(),
		f.task("t", input={"url": "https://example.com", "method": "POST", "timeout": 2.5}),
		f.sub_workflow("sw", version=2),
		f.approval(
			"ok",
			assignees=["alice"],
			escalation={"after_seconds": 5, "to_role": "admin", "to_assignees": ["alice"]},
		),
		f.end(),
		edges=[f.edge("start", "t"), f.edge("t", "sw"), f.edge("sw", "ok"), f.edge("ok", "end", "approved")],
	)
	# When validated with the resolver, then it is valid and every reference was asked about
	result = validate_definition(doc, references=resolver)
	assert result.ok, result.errors
	assert ("action", ("http", "request")) in resolver.asked
	assert ("workflow", ("child", 2)) in resolver.asked
	assert ("role", "operator") in resolver.asked or ("role", "admin") in resolver.asked
	assert ("user", "alice") in resolver.asked


def test_unknown_action(resolver: FakeResolver) -> None:
	error = the_error(
		validate_definition(_with_task(connector="nope", action="run"), references=resolver), "unknown_action"
	)
	assert error.pointer == "/nodes/1/config/action"
	assert "'nope.run'" in error.message
	assert "node 't'" in error.message


def test_unknown_compensation_action(resolver: FakeResolver) -> None:
	doc = _with_task(input={"url": "u"}, compensation={"connector": "http", "action": "undo"})
	error = the_error(validate_definition(doc, references=resolver), "unknown_action")
	assert error.pointer == "/nodes/1/config/compensation/action"


def test_compensation_input_checked_against_its_schema(resolver: FakeResolver) -> None:
	doc = _with_task(input={"url": "u"}, compensation={"connector": "http", "action": "request", "input": {}})
	error = the_error(validate_definition(doc, references=resolver), "missing_input")
	assert error.pointer == "/nodes/1/config/compensation/input"


def test_missing_required_input(resolver: FakeResolver) -> None:
	error = the_error(
		validate_definition(_with_task(input={"method": "GET"}), references=resolver), "missing_input"
	)
	assert error.pointer == "/nodes/1/config/input"
	assert "'url'" in error.message
	assert "http.request" in error.message


def test_unknown_input_key_with_a_suggestion(resolver: FakeResolver) -> None:
	result = validate_definition(_with_task(input={"url": "u", "metod": "GET"}), references=resolver)
	error = the_error(result, "unknown_input")
	assert error.pointer == "/nodes/1/config/input/metod"
	assert error.hint.startswith("did you mean 'method'?")
	assert "headers, json, method, timeout, url" in error.hint


def test_literal_input_values_are_type_checked(resolver: FakeResolver) -> None:
	doc = _with_task(input={"url": "u", "timeout": "soon", "method": "PATCH", "headers": {"X-A": 1}})
	result = validate_definition(doc, references=resolver)
	assert codes(result) == ["invalid_input"] * 3
	assert [error.pointer for error in result.errors] == [
		"/nodes/1/config/input/headers/X-A",
		"/nodes/1/config/input/method",
		"/nodes/1/config/input/timeout",
	]
	assert "'soon' is not of type 'number'" in result.errors[2].message
	# A $ref into the action schema's $defs resolves.
	assert "'PATCH' is not one of" in result.errors[1].message


def test_expression_values_are_skipped(resolver: FakeResolver) -> None:
	doc = _with_task(
		input={"url": "${ .input.url }", "timeout": "${ .input.timeout }", "headers": {"X": "${ .h }"}}
	)
	assert validate_definition(doc, references=resolver).ok


def test_whole_input_as_an_expression_is_skipped(resolver: FakeResolver) -> None:
	assert validate_definition(_with_task(input="${ .input.request }"), references=resolver).ok


def test_literal_non_object_input_is_checked_whole(resolver: FakeResolver) -> None:
	error = the_error(validate_definition(_with_task(input=[1, 2]), references=resolver), "invalid_input")
	assert error.pointer == "/nodes/1/config/input"
	assert "not of type 'object'" in error.message


def test_open_schemas_allow_unknown_keys(resolver: FakeResolver) -> None:
	resolver.actions[("http", "request")] = ActionInfo(
		input_schema={"type": "object", "properties": {"url": {"type": "string"}}}
	)
	assert validate_definition(_with_task(input={"url": "u", "extra": 1}), references=resolver).ok


def test_actions_without_a_schema_accept_any_input(resolver: FakeResolver) -> None:
	doc = _with_task(connector="slack", action="post", input={"anything": [1, 2]})
	assert validate_definition(doc, references=resolver).ok


def test_a_broken_action_schema_is_not_the_definitions_fault(resolver: FakeResolver) -> None:
	resolver.actions[("http", "request")] = ActionInfo(
		input_schema={"type": "object", "properties": {"url": {"$ref": "#/$defs/missing"}}}
	)
	assert validate_definition(_with_task(input={"url": "u"}), references=resolver).ok


def test_unknown_workflow(resolver: FakeResolver) -> None:
	error = the_error(
		validate_definition(f.linear(f.sub_workflow("sw", workflow="ghost")), references=resolver),
		"unknown_workflow",
	)
	assert error.pointer == "/nodes/1/config/workflow"
	assert "'ghost'" in error.message


def test_unknown_workflow_version(resolver: FakeResolver) -> None:
	doc = f.linear(f.sub_workflow("sw", version=9))
	error = the_error(validate_definition(doc, references=resolver), "unknown_workflow_version")
	assert error.pointer == "/nodes/1/config/version"
	assert "version 9" in error.message


def test_latest_version_of_a_known_workflow_passes(resolver: FakeResolver) -> None:
	assert validate_definition(f.linear(f.sub_workflow("sw")), references=resolver).ok


def _approval_doc(**config: Any) -> dict[str, Any]:
	return f.definition(
		f.start(),
		f.approval("ok", **config),
		f.end(),
		edges=[f.edge("start", "ok"), f.edge("ok", "end", "approved")],
	)


def test_unknown_users(resolver: FakeResolver) -> None:
	doc = _approval_doc(
		assignees=["alice", "mallory"], escalation={"after_seconds": 5, "to_assignees": ["eve"]}
	)
	result = validate_definition(doc, references=resolver)
	assert [(error.pointer, error.code) for error in result.errors] == [
		("/nodes/1/config/assignees/1", "unknown_user"),
		("/nodes/1/config/escalation/to_assignees/0", "unknown_user"),
	]
	assert "'mallory'" in result.errors[0].message


def test_roles_the_tenant_does_not_allow(resolver: FakeResolver) -> None:
	resolver.roles = {"admin"}
	doc = _approval_doc(role="operator", escalation={"after_seconds": 5, "to_role": "owner"})
	result = validate_definition(doc, references=resolver)
	assert [(error.pointer, error.code) for error in result.errors] == [
		("/nodes/1/config/escalation/to_role", "unknown_role"),
		("/nodes/1/config/role", "unknown_role"),
	]


def test_references_inside_bodies_are_checked(resolver: FakeResolver) -> None:
	doc = f.linear(f.map_("m", f.body([f.task("inner", connector="nope")])))
	error = the_error(validate_definition(doc, references=resolver), "unknown_action")
	assert error.pointer == "/nodes/1/config/body/nodes/0/config/action"


def test_malformed_references_are_left_to_shape_errors(resolver: FakeResolver) -> None:
	doc = f.linear(
		f.node("t", "task", {"connector": 5}),
		f.node("sw", "sub_workflow", {"workflow": "x", "version": "v1"}),
	)
	result = validate_definition(doc, references=resolver)
	assert resolver.asked == []
	assert "unknown_action" not in codes(result)


def test_approval_without_escalation(resolver: FakeResolver) -> None:
	assert validate_definition(_approval_doc(role="operator"), references=resolver).ok
	assert ("role", "operator") in resolver.asked
