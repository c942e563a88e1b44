"""The standard evaluation context."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import uuid
from decimal import Decimal
from typing import Any, cast

import pytest

from workflows.expressions import build_context, compile_expression, to_json_value


def test_the_standard_context_has_every_key(context: dict[str, Any]) -> None:
	assert set(context) == {"input", "steps", "run", "secrets"}
	assert context["steps"]["fetch"]["status"] == "succeeded"
	assert context["secrets"] == {"api_token": "secret://api_token"}


def test_steps_always_have_output_and_status() -> None:
	context = build_context(
		input={}, steps={"wait": {"status": "running"}, "x": {"output": 1, "attempt": 2}}, run={}
	)

	assert context["steps"] == {
		"wait": {"output": None, "status": "running"},
		"x": {"output": 1, "status": None, "attempt": 2},
	}


def test_item_and_index_exist_only_inside_loops() -> None:
	outside = build_context(input={}, steps={}, run={})
	inside = build_context(input={}, steps={}, run={}, item={"sku": "A1"}, index=0)

	assert "item" not in outside
	assert compile_expression("$item.sku").evaluate(inside) == "A1"
	assert compile_expression("$index").evaluate(inside) == 0
	assert compile_expression("[.item.sku, .index]").evaluate(inside) == ["A1", 0]
	assert build_context(input={}, steps={}, run={}, item=None)["item"] is None


def test_extra_keys_become_variables_but_cannot_replace_standard_ones() -> None:
	context = build_context(input={}, steps={}, run={}, extra={"env_name": "prod"})

	assert compile_expression("$env_name").evaluate(context) == "prod"
	with pytest.raises(ValueError, match="may not replace standard ones: input, steps"):
		build_context(input={}, steps={}, run={}, extra={"steps": 1, "input": 2})


def test_run_metadata_is_made_json() -> None:
	run_id = uuid.uuid4()
	started = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)

	context = build_context(input={}, steps={}, run={"id": run_id, "started_at": started})

	assert context["run"] == {"id": str(run_id), "started_at": "2025-01-02T03:04:05+00:00"}
	assert compile_expression("$run.started_at[:10]").evaluate(context) == "2025-01-02"


def test_steps_must_be_mappings() -> None:
	with pytest.raises(TypeError, match="step 'fetch' must be a mapping"):
		build_context(input={}, steps=cast(Any, {"fetch": "done"}), run={})


class _Colour(enum.Enum):
	RED = "red"


@dataclasses.dataclass
class _Point:
	x: int
	y: Decimal


def test_to_json_value_converts_common_python_values() -> None:
	value = {
		1: (dt.date(2025, 1, 2), dt.time(3, 4)),
		"set": frozenset({2, 1}),
		"money": [Decimal("1.50"), Decimal("2")],
		"colour": _Colour.RED,
		"point": _Point(1, Decimal("0.5")),
	}

	assert to_json_value(value) == {
		"1": ["2025-01-02", "03:04:00"],
		"set": [1, 2],
		"money": [1.5, 2],
		"colour": "red",
		"point": {"x": 1, "y": 0.5},
	}
	with pytest.raises(TypeError, match="object has no JSON form"):
		to_json_value({"x": object()})
	with pytest.raises(TypeError, match="type has no JSON form"):
		to_json_value(_Point)
