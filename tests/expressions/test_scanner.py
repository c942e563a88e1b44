"""Finding where an embedded ``${ ... }`` ends, the way jq's lexer would."""

from __future__ import annotations

import pytest

from workflows.expressions.scanner import Embedded, ScanError, find_closing_brace, split_template


@pytest.mark.parametrize(
	("text", "expected_source"),
	[
		("${ .a }", ".a"),
		("${ {a: 1} | .a }", "{a: 1} | .a"),
		('${ "}" }', '"}"'),
		('${ "a\\"}" }', '"a\\"}"'),
		('${ "\\( {b: "}"} | .b )" }', '"\\( {b: "}"} | .b )"'),
		('${ "\\( ("x") )" }', '"\\( ("x") )"'),
		("${ .a # } still a comment\n }", ".a # } still a comment"),
		("${ .a # continued \\\n } also comment\n }", ".a # continued \\\n } also comment"),
		("${ .a # not continued \\\\\n }", ".a # not continued \\\\"),
	],
)
def test_closing_brace_skips_strings_comments_and_nested_braces(text: str, expected_source: str) -> None:
	end = find_closing_brace(text, 2)

	assert end == len(text) - 1
	assert text[2:end].strip() == expected_source


@pytest.mark.parametrize(
	("text", "problem"),
	[
		("${ .a ", "missing }"),
		("${ {a: 1 }", "missing }"),
		('${ "} ', "unterminated string"),
		("${ .a # comment }", "missing }"),
		("${ .a # comment at the very end", "missing }"),
		("${ .a # continued onto nothing \\\n", "missing }"),
	],
)
def test_unterminated_expressions_are_reported(text: str, problem: str) -> None:
	with pytest.raises(ScanError, match=problem) as caught:
		find_closing_brace(text, 2)

	assert caught.value.position == 2


def test_split_template_separates_text_and_expressions() -> None:
	parts = split_template("Hello ${ .name }, you owe ${ .amount }!")

	assert parts == ["Hello ", Embedded(".name", 6), ", you owe ", Embedded(".amount", 26), "!"]


def test_double_dollar_is_a_literal_dollar_brace() -> None:
	assert split_template("cost: $${ .not_an_expression }") == ["cost: ${ .not_an_expression }"]
	assert split_template("$${${ .a }") == ["${", Embedded(".a", 3)]


def test_text_without_expressions_is_one_part() -> None:
	assert split_template("plain") == ["plain"]
	assert split_template("") == []
