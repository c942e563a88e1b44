"""Export and import: JSON and YAML round trips are the identity; bad syntax has a position."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.dsl import factories as f
from tests.dsl.strategies import definitions, json_documents, json_values, mutated_definitions
from workflows.dsl import DocumentError, checksum, dump_json, dump_yaml, load_document
from workflows.dsl.io import MAX_TEXT_CHARS

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(json_documents)
def test_json_round_trip_of_any_document(doc: dict[str, Any]) -> None:
	assert load_document(dump_json(doc)) == doc


@FAST
@given(json_documents)
def test_yaml_round_trip_of_any_document(doc: dict[str, Any]) -> None:
	text = dump_yaml(doc)
	loaded = load_document(text, format="yaml")
	assert loaded == doc
	# Key order is kept too.
	assert json.dumps(loaded) == json.dumps(doc)


@FAST
@given(definitions() | mutated_definitions())
def test_round_trip_of_definitions(doc: dict[str, Any]) -> None:
	assert load_document(dump_json(doc)) == doc
	assert load_document(dump_yaml(doc)) == doc


@FAST
@given(json_values)
def test_yaml_round_trip_of_any_value_under_a_key(value: Any) -> None:
	doc = {"value": value}
	assert load_document(dump_yaml(doc)) == doc


TRICKY_STRINGS = [
	"on",
	"off",
	"yes",
	"no",
	"y",
	"n",
	"true",
	"False",
	"null",
	"~",
	"",
	" ",
	"1.0",
	"1e3",
	".5",
	"1_000",
	"007",
	"0x1F",
	"0o17",
	"12:30",
	"2024-01-01",
	"2024-01-01T10:00:00Z",
	"=",
	"<<",
	"- a",
	"a: b",
	"#x",
	"&anchor",
	"*alias",
	"!tag",
	"|",
	">",
	"'",
	'"',
	"%",
	"@",
	"`",
	"multi\nline\n",
	"trailing  \nspaces ",
	"\ttab",
	"\r\n",
	"\x85",
	"\u2028",
	"\ufeff",
	"-",
	"---",
	"...",
	".inf",
	".nan",
	"NaN",
	"${ .x }",
]


@pytest.mark.parametrize("text", TRICKY_STRINGS)
def test_yaml_keeps_strings_that_look_like_other_types(text: str) -> None:
	doc = {text: text, "list": [text]}
	assert load_document(dump_yaml(doc), format="yaml") == doc


def test_yaml_quotes_lookalikes() -> None:
	text = dump_yaml({"on": "yes", "version": "1.0", "date": "2024-01-01", "code": "007", "exp": "1e3"})
	assert text == "'on': 'yes'\nversion: '1.0'\ndate: '2024-01-01'\ncode: '007'\nexp: '1e3'\n"


def test_yaml_writes_multiline_templates_as_blocks() -> None:
	text = dump_yaml({"message": "Hello ${ .name },\nyour order shipped.\n"})
	assert text == "message: |\n  Hello ${ .name },\n  your order shipped.\n"


def test_yaml_input_is_read_as_json() -> None:
	# Given hand-written YAML using 1.1 lookalikes as keys and a date
	doc = load_document("on: push\nno: 3\nwhen: 2024-01-01\nn: 7\nyes_value: yes\n")
	# Then keys are strings, dates stay strings, values keep YAML meaning
	assert doc == {"on": "push", "no": 3, "when": "2024-01-01", "n": 7, "yes_value": True}


def test_the_example_reads_the_same_from_json_and_yaml() -> None:
	assert load_document(dump_yaml(f.EXAMPLE)) == load_document(dump_json(f.EXAMPLE)) == f.EXAMPLE


@pytest.mark.parametrize(
	("text", "fmt", "line", "column", "message"),
	[
		('{\n  "a": 1,\n}', None, 3, 1, "Expecting property name"),
		('{"a": NaN}', None, None, None, "NaN is not a JSON number"),
		('{"a": 1, "a": 2}', None, None, None, "duplicate key 'a'"),
		("a: 1\na: 2\n", None, 2, 1, "duplicate key 'a'"),
		("a: [1, 2\n", None, 2, 1, "expected ',' or ']'"),
		("a: &x 1\nb: *x\n", None, 2, 4, "aliases"),
		("a: !!binary aGk=\n", None, 1, 4, "not a JSON type"),
		("a: !!set {x}\n", None, 1, 4, "not a JSON type"),
		("a: .inf\n", None, 1, 4, "not a JSON number"),
		("? [a]\n: 1\n", None, 1, 3, "keys must be strings"),
		("a: 1\n---\nb: 2\n", None, 2, 1, "single document"),
		("a: 'unterminated\n", None, 2, 1, "found unexpected end of stream"),
		("- 1\n- 2\n", None, None, None, "must be an object, not an array"),
		("", None, None, None, "must be an object, not empty"),
		("{}", "yaml", None, None, None),
	],
)
def test_bad_documents_say_where(
	text: str, fmt: Any, line: int | None, column: int | None, message: str | None
) -> None:
	if message is None:
		assert load_document(text, format=fmt) == {}
		return
	with pytest.raises(DocumentError) as caught:
		load_document(text, format=fmt)
	error = caught.value
	assert message in error.message
	assert (error.line, error.column) == (line, column)
	assert error.to_dict() == {"message": error.message, "line": line, "column": column}
	if line is not None:
		assert str(error).startswith(f"line {line}, column {column}: ")


def test_explicit_format_overrides_sniffing() -> None:
	assert load_document('{"a": 1}', format="yaml") == {"a": 1}
	with pytest.raises(DocumentError):
		load_document("a: 1", format="json")


def test_byte_order_mark_is_ignored() -> None:
	assert load_document('\ufeff{"a": 1}') == {"a": 1}


def test_too_long_text_is_refused() -> None:
	with pytest.raises(DocumentError, match="longer than"):
		load_document(" " * (MAX_TEXT_CHARS + 1))


def test_too_deep_text_is_refused() -> None:
	with pytest.raises(DocumentError, match="nested too deeply"):
		load_document('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")
	with pytest.raises(DocumentError, match="nested too deeply"):
		load_document("a: " + "[" * 100_000 + "]" * 100_000)


def test_dumping_non_json_fails() -> None:
	with pytest.raises(ValueError, match="JSON"):
		dump_yaml({"a": [float("nan")]})
	with pytest.raises(ValueError, match="JSON"):
		dump_yaml({"a": {"b": float("inf")}})
	with pytest.raises(ValueError, match="JSON"):
		dump_json({"a": float("nan")})


def test_checksum_ignores_key_order_and_formatting() -> None:
	a = {"b": 1, "a": [1, {"y": 2, "x": 3}]}
	b = {"a": [1, {"x": 3, "y": 2}], "b": 1}
	assert checksum(a) == checksum(b)
	assert checksum(a) != checksum(a | {"b": 2})
	assert len(checksum(a)) == 64
	assert checksum(load_document(dump_yaml(f.EXAMPLE))) == checksum(f.EXAMPLE)


@FAST
@given(json_documents, st.randoms())
def test_checksum_is_independent_of_key_order(doc: dict[str, Any], random: Any) -> None:
	keys = list(doc)
	random.shuffle(keys)
	assert checksum({key: doc[key] for key in keys}) == checksum(doc)


def test_control_characters_in_yaml_are_refused() -> None:
	with pytest.raises(DocumentError, match="invalid YAML") as caught:
		load_document("a: \x00\n")
	assert caught.value.line is None
