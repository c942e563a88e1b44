"""Fuzzing: validate_definition returns a result for any input and never raises."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.dsl import factories as f
from tests.dsl.conftest import FakeResolver
from tests.dsl.factories import codes
from tests.dsl.strategies import definitions, json_values, mutated_definitions
from workflows.dsl import ActionInfo, Definition, ValidationResult, validate_definition, validation
from workflows.dsl.errors import pointer_parts

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

RESOLVER = FakeResolver(
	actions={
		("http", "request"): ActionInfo(
			input_schema={"type": "object", "required": ["url"], "additionalProperties": False}
		)
	},
	workflows={("child", 1)},
)


def _parent_exists(doc: Any, pointer: str) -> bool:
	value = doc
	for part in pointer_parts(pointer)[:-1]:
		if isinstance(value, dict) and part in value:
			value = value[part]
		elif isinstance(value, list) and part.isascii() and part.isdigit() and int(part) < len(value):
			value = value[int(part)]
		else:
			return False
	return True


def _check(doc: Any, result: Any) -> None:
	assert isinstance(result, ValidationResult)
	assert result.ok == (not result.errors)
	assert (result.definition is not None) == result.ok
	for error in result.errors:
		assert error.code != "internal_error", error
		assert re.fullmatch(r"[a-z][a-z0-9_]*", error.code), error
		assert error.message
		# Every pointer leads into the document (its last step may name a missing field).
		assert _parent_exists(doc, error.pointer), error


@FUZZ
@given(json_values)
def test_any_json_value_gives_a_result(doc: Any) -> None:
	_check(doc, validate_definition(doc))


@FUZZ
@given(
	st.dictionaries(
		st.sampled_from(["schema_version", "nodes", "edges", "outputs", "defaults", "input_schema"]),
		json_values,
	)
)
def test_any_object_with_definition_keys_gives_a_result(doc: dict[str, Any]) -> None:
	_check(doc, validate_definition(doc))


@FUZZ
@given(mutated_definitions())
def test_mutated_definitions_give_a_result(doc: Any) -> None:
	_check(doc, validate_definition(doc, references=RESOLVER))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(definitions())
def test_generated_definitions_are_valid_and_round_trip(doc: dict[str, Any]) -> None:
	result = validate_definition(doc)
	assert result.ok, result.errors
	assert isinstance(result.definition, Definition)
	assert result.definition.model_dump(mode="json", exclude_unset=True) == doc


def test_python_values_that_are_not_json() -> None:
	# Sets, bytes, NaN and non-string keys are refused with a pointer, never a crash.
	for doc, pointer in [
		({"nodes": [{1, 2}]}, "/nodes/0"),
		({"nodes": b"x"}, "/nodes"),
		({"a": {"b": float("inf")}}, "/a/b"),
		({"a": {3: "x"}}, "/a"),
		(object(), ""),
	]:
		result = validate_definition(doc)
		assert [error.code for error in result.errors] == ["not_json"]
		assert result.errors[0].pointer == pointer


# --- a bug in one phase is reported, never raised, and does not hide the others ---


def test_a_bug_in_one_phase_does_not_hide_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
	def broken(*_args: Any) -> Any:
		raise RuntimeError("boom")

	monkeypatch.setattr(validation, "_check_expressions", broken)
	doc = f.definition(f.start(), f.end(), f.set_("orphan"), edges=[f.edge("start", "end")])
	result = validate_definition(doc)
	assert [error.code for error in result.errors] == ["internal_error", "unreachable"]
	assert "RuntimeError: boom" in result.errors[0].message


@pytest.mark.parametrize("target", ["build_view", "_check_raw"])
def test_an_unexpected_failure_still_returns_a_result(monkeypatch: pytest.MonkeyPatch, target: str) -> None:
	def broken(*_args: Any) -> Any:
		raise RuntimeError("boom")

	monkeypatch.setattr(validation, target, broken)
	result = validate_definition(f.linear())
	assert "internal_error" in [error.code for error in result.errors]
	assert result.definition is None


def test_shape_phase_failure_is_contained(monkeypatch: pytest.MonkeyPatch) -> None:
	class Exploding:
		@staticmethod
		def model_validate(_data: Any) -> Any:
			raise RuntimeError("boom")

	monkeypatch.setattr(validation, "Definition", Exploding)
	result = validate_definition(f.linear())
	assert [error.code for error in result.errors] == ["internal_error"]


def test_a_bug_translating_shape_errors_is_contained(monkeypatch: pytest.MonkeyPatch) -> None:
	def broken(*_args: Any) -> Any:
		raise RuntimeError("boom")

	monkeypatch.setattr(validation, "errors_from_pydantic", broken)
	doc = f.definition(f.start(), f.task("t", retries=1), f.set_("orphan"), edges=[f.edge("start", "t")])
	assert codes(validate_definition(doc)) == ["internal_error", "unreachable"]
