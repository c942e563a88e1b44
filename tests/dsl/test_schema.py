"""The definition models: exact round trips, frozen data, JSON Schema export, helpers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jsonschema
import pytest
from pydantic import ValidationError

from tests.dsl import factories as f
from workflows.dsl import (
	LIMITS,
	NODE_TYPES,
	ROLES,
	Definition,
	LoopNode,
	MapNode,
	StartNode,
	TaskNode,
	definition_json_schema,
	parse_duration,
	parse_timestamp,
	source_handles,
)
from workflows.dsl.schema import NODE_MODELS, looks_like_iso_duration, parse_iso_duration
from workflows.roles import Role

EVERY_NODE_TYPE = f.definition(
	f.start(),
	f.task("t", retry={"max_attempts": 2}, queue="steps.cpu"),
	f.switch("s", ("big", ".input.n > 10")),
	f.parallel("p"),
	f.set_("a"),
	f.set_("b"),
	f.join("j", mode="n_of_m", n=2, fork="p"),
	f.map_("m", f.body([f.set_("m_inner")]), max_concurrency=4, result="${ .results }"),
	f.loop("l", f.body([f.set_("l_inner")]), mode="until"),
	f.wait("w", duration="PT5M"),
	f.wait("w2", until="2030-01-01T00:00:00Z"),
	f.wait_for_event("e", timeout_seconds=60),
	f.approval(
		"ap",
		assignees=["alice"],
		role="admin",
		title="OK?",
		form_schema={"type": "object"},
		deadline_seconds=3600,
		escalation={"after_seconds": 600, "to_role": "owner"},
	),
	f.sub_workflow("sw", version=2, on_failure="error_branch"),
	f.fail(),
	f.end(output={"ok": True}),
	edges=[],
)


def test_every_node_type_has_a_model() -> None:
	# Given the node type list, when comparing with the models, then they agree
	assert set(NODE_TYPES) == set(NODE_MODELS)
	assert len(NODE_TYPES) == 14


def test_roles_mirror_the_tenant_roles() -> None:
	assert tuple(role.value for role in Role) == ROLES


@pytest.mark.parametrize(
	"doc", [f.EXAMPLE, EVERY_NODE_TYPE, f.linear(f.task("t"))], ids=["example", "every-type", "linear"]
)
def test_dump_without_unset_fields_is_the_input(doc: dict) -> None:
	# Given a document, when it is parsed and dumped, then nothing was added or changed
	definition = Definition.model_validate(doc)
	assert definition.model_dump(mode="json", exclude_unset=True) == doc


def test_defaults_apply_without_being_written() -> None:
	# Given a document that sets no defaults
	definition = Definition.model_validate(f.linear(f.task("t")))
	# Then the typed model has them
	assert definition.defaults.priority == 5
	assert definition.defaults.retry.max_attempts == 3
	assert definition.input_schema == {"type": "object"}
	task = definition.node("t")
	assert isinstance(task, TaskNode)
	assert task.config.queue == "steps"
	assert task.config.retry is None


def test_models_are_frozen() -> None:
	definition = Definition.model_validate(f.EXAMPLE)
	with pytest.raises(ValidationError, match="frozen"):
		definition.nodes = []


def test_strict_types_are_not_coerced() -> None:
	# Given a priority written as a string, then it is refused rather than coerced
	with pytest.raises(ValidationError):
		Definition.model_validate(f.linear() | {"defaults": {"priority": "5"}})


def test_graph_helpers() -> None:
	definition = Definition.model_validate(
		EVERY_NODE_TYPE | {"edges": [f.edge("start", "t"), f.edge("t", "end", "error")]}
	)
	assert isinstance(definition.start, StartNode)
	assert definition.node("missing") is None
	assert [edge.target for edge in definition.outgoing("t")] == ["end"]
	assert [edge.source for edge in definition.incoming("t")] == ["start"]
	assert definition.edges[0].handle == "out"
	assert definition.edges[1].handle == "error"
	ids = [node.id for node in definition.all_nodes()]
	assert ids.index("m_inner") == ids.index("m") + 1
	assert ids.index("l_inner") == ids.index("l") + 1
	loop = definition.node("l")
	assert isinstance(loop, LoopNode)
	assert loop.config.body.node("l_inner") is not None
	assert isinstance(definition.node("m"), MapNode)


def test_json_schema_is_a_valid_schema_accepting_documents() -> None:
	# Given the exported schema
	schema = definition_json_schema()
	# Then it is itself valid, and accepts valid documents
	jsonschema.Draft202012Validator.check_schema(schema)
	for doc in (f.EXAMPLE, EVERY_NODE_TYPE):
		jsonschema.validate(doc, schema)
	# And refuses an unknown field
	with pytest.raises(jsonschema.ValidationError):
		jsonschema.validate(f.linear() | {"bogus": 1}, schema)


def test_json_schema_describes_limits_and_types() -> None:
	schema = definition_json_schema()
	assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
	node_id = schema["$defs"]["StartNode"]["properties"]["id"]
	assert node_id["maxLength"] == LIMITS.max_node_id_length
	assert node_id["pattern"].startswith("^[A-Za-z_]")
	mapping = schema["properties"]["nodes"]["items"]["discriminator"]["mapping"]
	assert set(mapping) == set(NODE_TYPES)
	# Field docstrings become descriptions the designer can show.
	assert "connector" in schema["$defs"]["TaskConfig"]["properties"]["connector"]["description"].lower()


def test_json_schema_is_a_fresh_copy() -> None:
	first = definition_json_schema()
	first["title"] = "changed"
	assert definition_json_schema()["title"] == "APG workflow definition"


@pytest.mark.parametrize(
	("node_type", "cases", "expected"),
	[
		("start", (), ("out",)),
		("task", (), ("out", "error")),
		("switch", ("a", "b"), ("a", "b", "default")),
		("wait_for_event", (), ("out", "timeout")),
		("approval", (), ("approved", "rejected", "timeout")),
		("end", (), ()),
		("unknown", (), ()),
	],
)
def test_source_handles(node_type: str, cases: tuple[str, ...], expected: tuple[str, ...]) -> None:
	assert source_handles(node_type, cases) == expected


@pytest.mark.parametrize(
	("text", "seconds"),
	[("PT5S", 5), ("PT1.5S", 1.5), ("PT1H30M", 5400), ("P2D", 172_800), ("P1W", 604_800), ("P1DT1S", 86_401)],
)
def test_parse_iso_duration(text: str, seconds: float) -> None:
	assert looks_like_iso_duration(text)
	assert parse_iso_duration(text) == seconds
	assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["P", "PT", "P1M", "P1Y", "P1DT", "PT5", "P5S"])
def test_parse_iso_duration_refuses_invalid_or_calendar_durations(text: str) -> None:
	with pytest.raises(ValueError, match="ISO-8601 duration"):
		parse_iso_duration(text)


def test_parse_duration_numbers_and_expressions() -> None:
	assert parse_duration(30) == 30.0
	assert parse_duration(0.5) == 0.5
	# An expression is only known at run time.
	assert parse_duration(".input.delay") is None
	assert parse_duration("${ .input.delay }") is None


def test_parse_timestamp() -> None:
	assert parse_timestamp("2030-01-01T00:00:00Z") == datetime(2030, 1, 1, tzinfo=UTC)
	assert parse_timestamp("2030-01-01T02:00:00+02:00").utcoffset() == timedelta(hours=2)
	with pytest.raises(ValueError, match="time zone"):
		parse_timestamp("2030-01-01T00:00:00")
	with pytest.raises(ValueError, match="month"):
		parse_timestamp("2030-13-01")


def test_limits_as_dict() -> None:
	limits = LIMITS.as_dict()
	assert limits["max_nodes"] == 2_000
	assert limits["max_document_bytes"] == 2 * 1024 * 1024
	assert limits["max_body_depth"] == 5
	assert limits["max_expression_length"] == 4_096
