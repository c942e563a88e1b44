"""Templates: JSON values whose strings hold expressions."""

from __future__ import annotations

import time
from typing import Any

import pytest

from workflows.expressions import (
	ExpressionRuntimeError,
	ExpressionSyntaxError,
	ExpressionTimeout,
	compile_expression,
	compile_template,
)
from workflows.expressions.templates import json_pointer, to_text


def test_a_lone_expression_keeps_the_type_of_its_result(context: dict[str, Any]) -> None:
	template = compile_template(
		{
			"amount": "${ .input.amount }",
			"items": "  ${ $input.items }\n",
			"vip": '${ $input.customer.tier == "gold" }',
			"nothing": "${ .input.missing }",
			"body": "${ $steps.fetch.output.body }",
		}
	)

	assert template.evaluate(context) == {
		"amount": 42.5,
		"items": [1, 2, 3],
		"vip": True,
		"nothing": None,
		"body": {"id": 7, "tags": ["a", "b"]},
	}


def test_expressions_inside_text_are_interpolated(context: dict[str, Any]) -> None:
	template = compile_template(
		"Dear ${ .input.customer.name }, items ${ $input.items }, total ${ .input.amount }, "
		"note '${ .input.missing }', ok ${ 1 < 2 }, id ${ $steps.fetch.output.body.id }"
	)

	assert template.evaluate(context) == ("Dear Ada, items [1,2,3], total 42.5, note '', ok true, id 7")


def test_interpolated_numbers_read_the_same_on_either_path() -> None:
	context = {"n": 3.0, "list": [1.0, 2.5], "big": 1e20, "obj": {"x": 2.0}}
	fast = compile_template("${ .n } ${ .list } ${ .big } ${ .obj }")
	jq = compile_template("${ .n + 0 } ${ .list | map(.) } ${ .big + 0 } ${ .obj | . }")

	assert fast.evaluate(context) == jq.evaluate(context) == '3 [1,2.5] 100000000000000000000 {"x":2}'


def test_to_text_renders_like_jq() -> None:
	assert to_text("plain") == "plain"
	assert to_text(None) == ""
	assert to_text(False) == "false"
	assert to_text({"é": [1, None]}) == '{"é":[1,null]}'


def test_braces_and_strings_inside_expressions(context: dict[str, Any]) -> None:
	template = compile_template(
		{
			"object": "${ {a: 1, b: {c: 2}} | .b.c }",
			"brace_in_string": '${ "}" }',
			"interpolation": 'x${ "\\( {k: "}"} | .k )" }y',
		}
	)

	assert template.evaluate(context) == {"object": 2, "brace_in_string": "}", "interpolation": "x}y"}


def test_double_dollar_writes_a_literal(context: dict[str, Any]) -> None:
	template = compile_template({"price": "$${ .input.amount } is ${ .input.amount }", "raw": "$${ not jq }"})

	assert template.evaluate(context) == {"price": "${ .input.amount } is 42.5", "raw": "${ not jq }"}
	assert len(template.expressions) == 1


def test_static_templates(context: dict[str, Any]) -> None:
	value = {"a": [1, {"b": None}], "c": "no expressions", "d": True, "e": 1.5, "f": ("tuple",)}
	template = compile_template(value)

	result = template.evaluate(context)

	assert template.is_static
	assert template.expressions == []
	assert result == {**value, "f": ["tuple"]}
	assert result["a"] is not value["a"]  # a fresh copy; the template cannot be changed through it


def test_expressions_are_listed_in_document_order() -> None:
	template = compile_template({"b": "${ .one }", "a": ["x ${ .two } ${ .three }", "${ .four }"]})

	assert [expression.source for expression in template.expressions] == [".one", ".two", ".three", ".four"]
	assert not template.is_static
	assert repr(template) == "Template(4 expressions)"
	assert template.expressions[0] == compile_expression(".one")


def test_compile_errors_name_the_json_pointer() -> None:
	with pytest.raises(ExpressionSyntaxError) as caught:
		compile_template({"headers": {"X-Amount/Cents": ["ok", "${ .x | foo }"]}})

	assert caught.value.pointer == "/headers/X-Amount~1Cents/1"
	assert str(caught.value) == (
		"template path '/headers/X-Amount~1Cents/1': expression '.x | foo' failed: "
		"jq: error: foo/0 is not defined at line 1, column 6"
	)


def test_unterminated_expressions_name_the_json_pointer() -> None:
	with pytest.raises(ExpressionSyntaxError, match="missing } to close") as caught:
		compile_template({"greeting": "Hello ${ .name"})

	assert caught.value.pointer == "/greeting"
	assert caught.value.source == "${ .name"


def test_runtime_errors_name_the_json_pointer(context: dict[str, Any]) -> None:
	template = compile_template({"list": ["fine", "${ null | keys }"]})

	with pytest.raises(ExpressionRuntimeError) as caught:
		template.evaluate(context)

	assert caught.value.pointer == "/list/1"
	assert str(caught.value.at(node_id="notify")) == (
		"node 'notify', template path '/list/1': expression 'null | keys' failed: jq: error: null (null) has no keys"
	)


def test_the_timeout_covers_the_whole_template(context: dict[str, Any]) -> None:
	template = compile_template(
		["${ $input.amount }", "${ [limit(100000000; repeat(1))] | length }", "${ 1 + 1 }"]
	)

	started = time.monotonic()
	with pytest.raises(ExpressionTimeout) as caught:
		template.evaluate(context, timeout=0.3)
	elapsed = time.monotonic() - started

	assert caught.value.pointer == "/1"
	assert "longer than 0.3 s" in caught.value.message
	assert elapsed < 0.6


def test_a_spent_budget_stops_the_next_expression(
	context: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
	template = compile_template(["${ $input.amount }", "${ $input.amount + 1 }"])
	clock = iter([0.0, 10.0])
	monkeypatch.setattr(time, "monotonic", lambda: next(clock))

	with pytest.raises(ExpressionTimeout) as caught:
		template.evaluate(context, timeout=1.0)

	assert caught.value.pointer == "/1"


def test_keys_are_not_templated(context: dict[str, Any]) -> None:
	assert compile_template({"${ .a }": 1}).evaluate(context) == {"${ .a }": 1}


def test_non_json_values_are_rejected() -> None:
	with pytest.raises(TypeError, match=r"'/a/0' is a set"):
		compile_template({"a": [{1, 2}]})
	with pytest.raises(TypeError, match="keys must be strings"):
		compile_template({"a": {1: "x"}})


def test_json_pointer_escaping() -> None:
	assert json_pointer([]) == ""
	assert json_pointer(["a/b", "c~d", 0]) == "/a~1b/c~0d/0"
