"""Compiling and evaluating single expressions, as a workflow author sees them."""

from __future__ import annotations

import pickle
from typing import Any, cast

import pytest

from workflows.expressions import (
	ExpressionError,
	ExpressionMultipleValues,
	ExpressionOutputTooLarge,
	ExpressionRuntimeError,
	ExpressionSandboxError,
	ExpressionSyntaxError,
	ExpressionTimeout,
	clear_compile_cache,
	compile_cache_info,
	compile_expression,
)
from workflows.expressions import expression as expression_module
from workflows.expressions.expression import Expression, strip_wrapper


def test_wrapped_and_bare_sources_mean_the_same(context: dict[str, Any]) -> None:
	wrapped = compile_expression("${ .input.customer.name }")
	bare = compile_expression(".input.customer.name")

	assert wrapped.source == bare.source == ".input.customer.name"
	assert wrapped.evaluate(context) == bare.evaluate(context) == "Ada"


def test_context_keys_are_both_input_fields_and_variables(context: dict[str, Any]) -> None:
	assert compile_expression("$input.customer.tier").evaluate(context) == "gold"
	assert compile_expression(".input.customer.tier").evaluate(context) == "gold"
	assert compile_expression("$steps.fetch.output.body.tags | length").evaluate(context) == 2
	assert compile_expression("[.steps.fetch.status, $run.id]").evaluate(context) == ["succeeded", "run-1"]


def test_compiled_expressions_know_their_variables() -> None:
	assert compile_expression("$input.a + ($steps | length)").variables == frozenset({"input", "steps"})
	assert compile_expression("$item.id").variables == frozenset({"item"})
	assert compile_expression(".a as $x | $x").variables == frozenset()


@pytest.mark.parametrize(
	("source", "expected"),
	[
		("${ {a: 1} | .a }", 1),
		('${ "}" }', "}"),
		("$input.items | map(. * 2)", [2, 4, 6]),
		("$input.amount > 40", True),
		(".input.missing", None),
		("empty", None),
		("$input | keys", ["amount", "customer", "items"]),
		('"\\($input.customer.name) (\\($input.customer.tier))"', "Ada (gold)"),
	],
)
def test_single_values_come_back_with_their_json_type(
	context: dict[str, Any], source: str, expected: Any
) -> None:
	assert compile_expression(source).evaluate(context) == expected


def test_several_values_must_be_collected_explicitly(context: dict[str, Any]) -> None:
	with pytest.raises(
		ExpressionMultipleValues, match=r"produced 3 values; wrap it in \[ ... \] to collect them"
	):
		compile_expression("$input.items[]").evaluate(context)

	assert compile_expression("[$input.items[]]").evaluate(context) == [1, 2, 3]


def test_endless_streams_are_counted_only_so_far(context: dict[str, Any]) -> None:
	with pytest.raises(ExpressionMultipleValues, match="produced more than 1000 values") as caught:
		compile_expression("range(1e12)").evaluate(context)

	assert caught.value.more


@pytest.mark.parametrize(
	("source", "problem"),
	[
		(".x | foo", "jq: error: foo/0 is not defined at line 1, column 6"),
		("[1,", "unexpected end of expression"),
		('.a | "open', "unterminated string literal"),
		("if . then 1", "Possibly unterminated 'if' statement"),
		(".a ` 1", "unexpected invalid character"),
	],
)
def test_syntax_errors_name_the_problem(source: str, problem: str) -> None:
	with pytest.raises(ExpressionSyntaxError) as caught:
		compile_expression(source)

	assert problem in caught.value.message
	assert caught.value.source == source


def test_empty_and_unclosed_wrappers_are_syntax_errors() -> None:
	with pytest.raises(ExpressionSyntaxError, match="the expression is empty"):
		compile_expression("${   }")
	with pytest.raises(ExpressionSyntaxError, match=r"missing } to close"):
		compile_expression("${ .a")
	with pytest.raises(ExpressionSyntaxError, match="use compile_template"):
		compile_expression("${ .a } and ${ .b }")


def test_source_length_is_limited_and_the_error_names_the_limit() -> None:
	with pytest.raises(ExpressionSyntaxError, match="is 4097 characters long; the limit is 4096 characters"):
		compile_expression("." + "a" * 4096)


def test_source_limit_is_configurable(limits: Any) -> None:
	limits(max_source_length=10)

	with pytest.raises(ExpressionSyntaxError, match="the limit is 10 characters"):
		compile_expression(".abcdefghij")


def test_only_strings_are_expressions() -> None:
	with pytest.raises(TypeError, match="must be a string"):
		compile_expression(cast(Any, 42))


def test_runtime_errors_carry_jqs_message(context: dict[str, Any]) -> None:
	with pytest.raises(ExpressionRuntimeError) as caught:
		compile_expression("null | keys").evaluate(context)

	assert caught.value.message == "jq: error: null (null) has no keys"
	assert str(caught.value) == "expression 'null | keys' failed: jq: error: null (null) has no keys"


def test_a_variable_missing_from_the_context_is_named(context: dict[str, Any]) -> None:
	with pytest.raises(
		ExpressionRuntimeError, match=r"\$item is not defined \(this context defines \$input, \$run"
	):
		compile_expression("$item.id").evaluate(context)
	with pytest.raises(
		ExpressionRuntimeError, match=r"\$item is not defined \(this context defines no variables\)"
	):
		compile_expression("$item | length").evaluate({"not a name": 1})


def test_loop_variables_work_when_given(context: dict[str, Any]) -> None:
	loop_context = {**context, "item": {"id": 9}, "index": 2}

	assert compile_expression("$item.id").evaluate(loop_context) == 9
	assert compile_expression("$item.id + $index").evaluate(loop_context) == 11


def test_output_limit_applies_on_both_paths(context: dict[str, Any]) -> None:
	with pytest.raises(ExpressionOutputTooLarge, match="more than the 10 bytes limit"):
		compile_expression("$input.customer").evaluate(context, max_output_bytes=10)
	with pytest.raises(
		ExpressionOutputTooLarge, match=r"result is 2 MiB of JSON, more than the 1 MiB limit"
	) as caught:
		compile_expression('"x" * 2097150').evaluate(context)

	assert caught.value.limit == 1 << 20
	assert caught.value.size == 2 << 20


def test_context_must_be_json(context: dict[str, Any]) -> None:
	broken = {**context, "input": {"when": object()}}

	with pytest.raises(ExpressionRuntimeError, match="the evaluation context is not valid JSON"):
		compile_expression("$input | length").evaluate(broken)
	with pytest.raises(ExpressionRuntimeError, match="the result is not valid JSON"):
		compile_expression("$input.when").evaluate(broken)
	with pytest.raises(TypeError, match="must be a mapping"):
		compile_expression(".").evaluate(cast(Any, [1, 2]))
	with pytest.raises(ValueError, match="must be positive"):
		compile_expression(".").evaluate(context, timeout=0)


def test_any_mapping_serves_as_context() -> None:
	from types import MappingProxyType

	assert compile_expression("$a + 1").evaluate(MappingProxyType({"a": 1})) == 2


def test_recompiling_hits_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
	clear_compile_cache()
	first = compile_expression("$input | length")
	monkeypatch.setattr(expression_module, "get_pool", lambda: pytest.fail("compiled twice"))

	again = compile_expression("$input | length")

	assert again is first
	assert compile_cache_info().hits == 1
	assert compile_cache_info().misses == 1


def test_cache_is_bounded(limits: Any) -> None:
	clear_compile_cache()
	limits(compile_cache_size=2)
	first = compile_expression(".a")
	compile_expression(".b")
	compile_expression(".c")

	assert compile_cache_info().size == 2
	assert compile_expression(".a") is not first


def test_expressions_compare_by_source() -> None:
	assert Expression(".a", frozenset()) == compile_expression("${ .a }")
	assert Expression(".a", frozenset()) != ".a"
	assert len({Expression(".a", frozenset()), Expression(".a", frozenset())}) == 1
	assert repr(Expression(".a", frozenset())) == "Expression('.a')"


def test_strip_wrapper_leaves_bare_jq_alone() -> None:
	assert strip_wrapper("  .a | .b  ") == ".a | .b"
	assert strip_wrapper(" ${ .a } ") == ".a"


def test_unexpected_sandbox_replies_are_errors(
	monkeypatch: pytest.MonkeyPatch, context: dict[str, Any]
) -> None:
	class Confused:
		def request(self, *_: Any, **__: Any) -> tuple[Any, ...]:
			return ("gibberish",)

	monkeypatch.setattr(expression_module, "get_pool", Confused)

	with pytest.raises(ExpressionSandboxError, match="unexpected reply"):
		Expression("$input | length", frozenset({"input"})).evaluate(context)
	with pytest.raises(ExpressionSandboxError, match="unexpected reply"):
		compile_expression("$input | length | . + 1000")


def test_a_sandbox_syntax_reply_is_a_syntax_error(monkeypatch: pytest.MonkeyPatch) -> None:
	class Strict:
		def request(self, *_: Any, **__: Any) -> tuple[Any, ...]:
			return ("syntax", "jq: error: nope")

	monkeypatch.setattr(expression_module, "get_pool", Strict)

	with pytest.raises(ExpressionSyntaxError, match="nope"):
		Expression("1 + 1", frozenset()).evaluate({})


# -- error presentation ----------------------------------------------------------------------


def test_errors_read_with_their_location() -> None:
	error = ExpressionSyntaxError("jq: error: foo/0 is not defined", source=".x | foo")

	located = error.at(node_id="charge", field="input.amount")

	assert str(located) == (
		"node 'charge', field 'input.amount': expression '.x | foo' failed: jq: error: foo/0 is not defined"
	)
	assert type(located) is ExpressionSyntaxError
	assert error.node_id is None  # the original is untouched
	assert located.at(pointer="/a").location == "node 'charge', field 'input.amount', template path '/a'"
	assert located.at().node_id == "charge"


def test_long_sources_are_shortened_in_messages() -> None:
	error = ExpressionError("boom", source="." + "a" * 300 + "\n| b")

	assert len(str(error)) < 160
	assert "…" in str(error)


def test_errors_survive_pickling() -> None:
	errors: list[ExpressionError] = [
		ExpressionRuntimeError("jq: error: x", source=".x").at(node_id="n", field="f"),
		ExpressionTimeout(0.5, source="def f: f; f"),
		ExpressionOutputTooLarge(10, 20, source="."),
		ExpressionMultipleValues(3, source=".[]"),
	]
	for error in errors:
		restored = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own errors, round-tripped

		assert type(restored) is type(error)
		assert str(restored) == str(error)
		assert restored.args == error.args
