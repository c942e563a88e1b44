"""The error helpers: JSON pointers and the translation of Pydantic errors."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from pydantic_core import InitErrorDetails

from tests.dsl import factories as f
from workflows.dsl import Definition, errors_from_pydantic
from workflows.dsl.errors import _model_at, json_kind, pointer, pointer_parts
from workflows.dsl.schema import Defaults, RetryPolicy, TaskConfig


def test_pointer_escapes_and_unescapes() -> None:
	parts = ["nodes", 3, "a/b", "c~d", ""]
	text = pointer(parts)
	assert text == "/nodes/3/a~1b/c~0d/"
	assert pointer_parts(text) == ["nodes", "3", "a/b", "c~d", ""]
	assert pointer([]) == ""
	assert pointer_parts("") == []


@pytest.mark.parametrize(
	("value", "kind"),
	[
		(None, "null"),
		(True, "a boolean"),
		(1, "a number"),
		(1.5, "a number"),
		("", "a string"),
		([], "an array"),
		({}, "an object"),
		(b"x", "a bytes"),
	],
)
def test_json_kind(value: Any, kind: str) -> None:
	assert json_kind(value) == kind


def test_model_at_follows_the_document() -> None:
	doc = f.linear(f.task("t", retry={}))
	assert _model_at([], doc) is Definition
	assert _model_at(["defaults"], doc) is Defaults
	assert _model_at(["nodes", 1, "config"], doc) is TaskConfig
	assert _model_at(["nodes", 1, "config", "retry"], doc) is RetryPolicy
	assert _model_at(["nope"], doc) is None
	assert _model_at(["schema_version", "x"], doc) is None
	assert _model_at(["outputs", "x"], doc | {"outputs": {"x": {}}}) is None
	assert _model_at(["nodes", 0], {"nodes": ["not a node"]}) is None


def _error(data: Any, *details: InitErrorDetails) -> list[Any]:
	exc = ValidationError.from_exception_data("Definition", list(details))
	return errors_from_pydantic(exc, data)


def test_error_on_the_whole_document() -> None:
	with pytest.raises(ValidationError) as caught:
		Definition.model_validate([])
	[error] = errors_from_pydantic(caught.value, [])
	assert error.pointer == ""
	assert error.message == "the document should be an object, not an array"


def test_unmapped_pydantic_errors_keep_their_type_and_message() -> None:
	[error] = _error(
		{"defaults": {"priority": "x"}},
		{"type": "string_too_short", "loc": ("defaults", "priority"), "input": "x", "ctx": {"min_length": 2}},
	)
	assert (error.pointer, error.code) == ("/defaults/priority", "string_too_short")
	assert "at least 2" in error.message


def test_missing_field_where_no_model_is_known() -> None:
	[error] = _error({"outputs": {"x": {}}}, {"type": "missing", "loc": ("outputs", "x", "y"), "input": {}})
	assert error.pointer == "/outputs/x/y"
	assert error.hint == "add 'y'"


def test_union_errors_that_are_not_all_type_errors_stay_separate() -> None:
	errors = _error(
		{"defaults": {"priority": "x"}},
		{"type": "int_type", "loc": ("defaults", "priority", "int"), "input": "x"},
		{
			"type": "value_error",
			"loc": ("defaults", "priority", "str"),
			"input": "x",
			"ctx": {"error": ValueError("bad")},
		},
	)
	assert [(error.pointer, error.code) for error in errors] == [
		("/defaults/priority", "invalid_type"),
		("/defaults/priority", "value_error"),
	]
	assert errors[1].message == "Value error, bad"
