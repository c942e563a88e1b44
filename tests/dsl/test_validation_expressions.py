"""Every expression and template in a definition must compile; errors point at the field."""

from __future__ import annotations

from typing import Any

import pytest

from tests.dsl import factories as f
from tests.dsl.factories import the_error
from workflows.dsl import LIMITS, validate_definition, validation
from workflows.expressions import ExpressionSandboxError

BAD = ".x |"
GOOD = ".input.x"


def _site_docs(expr: str) -> list[tuple[str, dict[str, Any], str]]:
	"""(case id, definition, pointer of the expression) for every place an expression may sit."""
	template = {"deep": ["literal", "${ " + expr + " }"]}
	template_pointer = "/deep/1"

	def one(node: dict[str, Any]) -> dict[str, Any]:
		return f.definition(f.start(), node, edges=[f.edge("start", node["id"])])

	return [
		("switch case", one(f.switch("s", ("a", expr))), "/nodes/1/config/cases/0/condition"),
		("map items", one(f.map_("m", f.body([f.set_("x")]), items=expr)), "/nodes/1/config/items"),
		(
			"loop condition",
			one(f.loop("l", f.body([f.set_("x")]), condition=expr)),
			"/nodes/1/config/condition",
		),
		("event correlation", one(f.wait_for_event("e", correlation=expr)), "/nodes/1/config/correlation"),
		("wait duration", one(f.wait("w", duration=expr)), "/nodes/1/config/duration"),
		("wait until", one(f.wait("w", until=expr)), "/nodes/1/config/until"),
		(
			"edge condition",
			f.definition(f.start(), f.end(), edges=[f.edge("start", "end", condition=expr)]),
			"/edges/0/condition",
		),
		("task input", one(f.task("t", input=template)), "/nodes/1/config/input" + template_pointer),
		("task output", one(f.task("t", output=template)), "/nodes/1/config/output" + template_pointer),
		(
			"compensation input",
			one(f.task("t", compensation={"connector": "http", "action": "request", "input": template})),
			"/nodes/1/config/compensation/input" + template_pointer,
		),
		(
			"map result",
			one(f.map_("m", f.body([f.set_("x")]), result=template)),
			"/nodes/1/config/result" + template_pointer,
		),
		(
			"approval instructions",
			one(f.approval("a", instructions=template)),
			"/nodes/1/config/instructions" + template_pointer,
		),
		(
			"sub-workflow input",
			one(f.sub_workflow("sw", input=template)),
			"/nodes/1/config/input" + template_pointer,
		),
		("set values", one(f.set_("s", template)), "/nodes/1/config/values" + template_pointer),
		("fail message", one(f.fail(message=template)), "/nodes/1/config/message" + template_pointer),
		("end output", one(f.end(output=template)), "/nodes/1/config/output" + template_pointer),
		(
			"definition outputs",
			f.linear() | {"outputs": {"result": template}},
			"/outputs/result" + template_pointer,
		),
	]


@pytest.mark.parametrize(
	("case", "doc", "pointer"), _site_docs(BAD), ids=[case for case, _, _ in _site_docs(BAD)]
)
def test_invalid_expression_is_reported_at_its_field(case: str, doc: dict, pointer: str) -> None:
	# Given a definition with one invalid expression, when validated
	result = validate_definition(doc)
	# Then exactly that field is reported, with the jq error and a hint
	assert [error.pointer for error in result.errors] == [pointer], result.errors
	error = result.errors[0]
	assert error.code in ("invalid_expression", "invalid_template")
	assert "syntax error" in error.message
	assert "jq" in error.hint


@pytest.mark.parametrize(
	("case", "doc", "pointer"), _site_docs(GOOD), ids=[case for case, _, _ in _site_docs(GOOD)]
)
def test_valid_expression_passes(case: str, doc: dict, pointer: str) -> None:
	assert validate_definition(doc).ok, validate_definition(doc).errors


def test_messages_name_the_node_and_the_source() -> None:
	doc = f.definition(f.start(), f.switch("route", ("a", BAD)), edges=[f.edge("start", "route")])
	error = the_error(validate_definition(doc), "invalid_expression")
	assert error.message.startswith("node 'route': '.x |' is not a valid expression")
	template = f.definition(f.start(), f.set_("s", {"a": "${ .x | }"}), edges=[f.edge("start", "s")])
	error = the_error(validate_definition(template), "invalid_template")
	assert error.message.startswith("node 's': the expression")
	assert error.pointer == "/nodes/1/config/values/a"


def test_wrapped_and_bare_expressions_both_compile() -> None:
	for condition in (".input.n > 3", "${ .input.n > 3 }"):
		doc = f.definition(f.start(), f.end(), edges=[f.edge("start", "end", condition=condition)])
		assert validate_definition(doc).ok


def test_unterminated_template_expression() -> None:
	doc = f.definition(f.start(), f.set_("s", "Hello ${ .name"), edges=[f.edge("start", "s")])
	error = the_error(validate_definition(doc), "invalid_template")
	assert error.pointer == "/nodes/1/config/values"


def test_iso_values_are_not_compiled_as_expressions() -> None:
	doc = f.linear(f.wait("w", duration="PT10S"), f.wait("w2", until="2030-01-01T00:00:00Z"))
	assert validate_definition(doc).ok


def test_expression_over_the_limit_names_the_limit() -> None:
	long = ".a" + " + .a" * (LIMITS.max_expression_length // 5 + 1)
	assert len(long) > LIMITS.max_expression_length
	doc = f.definition(f.start(), f.end(), edges=[f.edge("start", "end", condition=long)])
	error = the_error(validate_definition(doc), "limit_exceeded")
	assert error.pointer == "/edges/0/condition"
	assert "max_expression_length" in error.message


def test_embedded_expression_over_the_limit_names_the_limit() -> None:
	long = ".a" + " + .a" * (LIMITS.max_expression_length // 5 + 1)
	doc = f.definition(
		f.start(), f.set_("s", {"text": "Total: ${ " + long + " }"}), edges=[f.edge("start", "s")]
	)
	error = the_error(validate_definition(doc), "limit_exceeded")
	assert error.pointer == "/nodes/1/config/values/text"
	assert "max_expression_length" in error.message


def test_long_literal_text_in_a_template_is_fine() -> None:
	text = "x" * (LIMITS.max_expression_length * 2) + " ${ .name }"
	doc = f.definition(f.start(), f.set_("s", text), edges=[f.edge("start", "s")])
	assert validate_definition(doc).ok


def test_unterminated_long_template_is_left_to_the_compiler() -> None:
	text = "x" * (LIMITS.max_expression_length + 1) + " ${ .name"
	doc = f.definition(f.start(), f.set_("s", text), edges=[f.edge("start", "s")])
	assert the_error(validate_definition(doc), "invalid_template").pointer == "/nodes/1/config/values"


def test_an_unavailable_checker_is_not_blamed_on_the_expression(monkeypatch: pytest.MonkeyPatch) -> None:
	# Given the expression sandbox is down
	def down(_source: Any) -> Any:
		raise ExpressionSandboxError("no sandbox process could start")

	monkeypatch.setattr(validation, "compile_expression", down)
	monkeypatch.setattr(validation, "compile_template", down)
	doc = f.definition(f.start(), f.set_("s", "${ .a }"), edges=[f.edge("start", "s", condition=".ok")])
	# Then both are reported as unchecked, not invalid
	result = validate_definition(doc)
	assert [(error.pointer, error.code) for error in result.errors] == [
		("/edges/0/condition", "expression_unchecked"),
		("/nodes/1/config/values", "expression_unchecked"),
	]
	assert "again" in result.errors[0].hint


def test_malformed_expression_fields_are_left_to_shape_errors() -> None:
	doc = f.definition(f.start(), f.loop("l", f.body([f.set_("x")])), edges=[f.edge("start", "l")])
	doc["nodes"][1]["config"]["condition"] = 5
	result = validate_definition(doc)
	assert [(error.pointer, error.code) for error in result.errors] == [
		("/nodes/1/config/condition", "invalid_type")
	]
