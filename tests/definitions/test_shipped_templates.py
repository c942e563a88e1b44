"""The global templates shipped in workflows/templates_data: valid, runnable and portable.

Every template must validate with no errors (expressions included), also against the
built-in connector actions, its sample input must satisfy its input schema, and export
followed by import must give it back unchanged. No database is needed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

import pytest
from django.utils.text import slugify
from jsonschema import Draft202012Validator

from workflows.defaults import TEMPLATES_DIR, shipped_templates
from workflows.dsl import (
	NODE_TYPES,
	ROLES,
	SCHEMA_VERSION,
	ActionInfo,
	ReferenceResolver,
	dump_json,
	dump_yaml,
	load_document,
	validate_definition,
)
from workflows.expressions import compile_expression

if TYPE_CHECKING:
	from connectors.registry import Registry

Doc = dict[str, Any]

TEMPLATES: list[Doc] = shipped_templates()
SLUGS: frozenset[str] = frozenset(template["slug"] for template in TEMPLATES)
METADATA_KEYS = {
	"slug",
	"name",
	"description",
	"category",
	"industry",
	"tags",
	"version",
	"sample_input",
	"definition",
}
SECRET_REFERENCE = re.compile(r"^\$\{ \.secrets\.[A-Za-z0-9_]+ \}$")
OUTSIDE_OUTPUT_CONTEXT = re.compile(r"[.$](steps|item|index|secrets)\b")
EXAMPLE_URL = re.compile(r"^https://[a-z0-9.-]+\.example\.(com|org|net|de)/")

each_template = pytest.mark.parametrize(
	"template", TEMPLATES, ids=[template["slug"] for template in TEMPLATES]
)


class ShippedResolver:
	"""References as a fresh installation sees them: built-in actions, shipped workflows, roles."""

	def __init__(self, registry: Registry, slugs: frozenset[str]) -> None:
		self.registry = registry
		self.slugs = slugs

	def connector_action(self, connector: str, action: str) -> ActionInfo | None:
		found = self.registry.get_action(connector, action)
		return None if found is None else ActionInfo(input_schema=found.input_schema())

	def workflow_exists(self, slug: str, version: int | Literal["latest"]) -> bool:
		return slug in self.slugs

	def role_exists(self, role: str) -> bool:
		return role in ROLES

	def user_exists(self, username: str) -> bool:
		return True


def _registry() -> Registry | None:
	try:
		from connectors.registry import default_registry
	except ImportError:
		return None
	return default_registry()


def _levels(graph: Doc) -> Iterator[Doc]:
	"""The top level of a definition and every loop or map body in it, depth first."""
	yield graph
	for node in graph.get("nodes", []):
		if node["type"] in ("map", "loop"):
			yield from _levels(node["config"]["body"])


def _nodes(definition: Doc) -> Iterator[Doc]:
	for level in _levels(definition):
		yield from level.get("nodes", [])


def _called_workflows() -> set[str]:
	"""Slugs the shipped templates start as sub-workflows."""
	return {
		node["config"]["workflow"]
		for template in TEMPLATES
		for node in _nodes(template["definition"])
		if node["type"] == "sub_workflow"
	}


def _tasks(definition: Doc, connector: str, action: str) -> Iterator[Doc]:
	for node in _nodes(definition):
		config = node.get("config", {})
		if node["type"] == "task" and (config["connector"], config["action"]) == (connector, action):
			yield config["input"]
		compensation = config.get("compensation") if node["type"] == "task" else None
		if compensation and (compensation["connector"], compensation["action"]) == (connector, action):
			yield compensation.get("input", {})


def _auth_blocks(value: Any) -> Iterator[Doc]:
	if isinstance(value, dict):
		for key, item in value.items():
			if key == "auth" and isinstance(item, dict):
				yield item
			yield from _auth_blocks(item)
	elif isinstance(value, list):
		for item in value:
			yield from _auth_blocks(item)


def _problems(result: Any) -> str:
	return "\n".join(
		f"{error.pointer} [{error.code}] {error.message} ({error.hint})" for error in result.errors
	)


def test_the_catalogue_is_broad() -> None:
	industries = {template["industry"] for template in TEMPLATES}
	categories = {template["category"] for template in TEMPLATES}

	assert len(TEMPLATES) >= 12
	assert len(industries) >= 5, industries
	assert len(categories) >= 5, categories


def test_slugs_are_unique_and_equal_to_the_file_names() -> None:
	files = [path.stem for path in sorted(TEMPLATES_DIR.glob("*.yaml"))]
	slugs = [template["slug"] for template in TEMPLATES]

	assert slugs == files
	assert len(set(slugs)) == len(slugs)


def test_the_templates_use_every_node_type() -> None:
	used = {node["type"] for template in TEMPLATES for node in _nodes(template["definition"])}

	assert used == set(NODE_TYPES)


def test_sub_workflows_call_shipped_templates() -> None:
	called = _called_workflows()

	assert called
	assert called <= SLUGS


def test_called_templates_keep_their_slug_when_instantiated() -> None:
	# Instantiating without a slug derives it from the name; callers refer to the slug.
	called = _called_workflows()

	for template in TEMPLATES:
		if template["slug"] in called:
			assert slugify(template["name"]) == template["slug"]


@each_template
def test_metadata_is_complete(template: Doc) -> None:
	assert set(template) == METADATA_KEYS
	for key in ("slug", "name", "description", "category", "industry"):
		assert isinstance(template[key], str)
		assert template[key].strip() == template[key]
		assert template[key]
	assert re.fullmatch(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?", template["slug"])
	sentences = [part for part in re.split(r"(?<=[.!?])\s+", template["description"]) if part]
	assert 2 <= len(sentences) <= 4, sentences
	tags = template["tags"]
	assert isinstance(tags, list)
	assert tags
	assert all(isinstance(tag, str) and tag for tag in tags)
	assert len(set(tags)) == len(tags)
	assert template["version"] == 1
	assert isinstance(template["sample_input"], dict)


@each_template
def test_definition_is_valid(template: Doc) -> None:
	definition = template["definition"]

	result = validate_definition(definition)

	assert result.ok, _problems(result)
	assert definition["schema_version"] == SCHEMA_VERSION


@each_template
def test_definition_is_valid_against_the_builtin_connectors(template: Doc) -> None:
	registry = _registry()
	if registry is None:
		pytest.skip("the connector registry is not available")
	resolver: ReferenceResolver = ShippedResolver(registry, SLUGS)

	result = validate_definition(template["definition"], references=resolver)

	assert result.ok, _problems(result)


@each_template
def test_run_outputs_come_from_one_place(template: Doc) -> None:
	# A definition's outputs become the run output whichever end node is reached, so end
	# nodes that also set an output would be ignored; templates use one or the other.
	definition = template["definition"]
	ends_with_output = [
		node["id"]
		for node in definition["nodes"]
		if node["type"] == "end" and node.get("config", {}).get("output") is not None
	]

	assert not (definition.get("outputs") and ends_with_output), ends_with_output


@each_template
def test_sample_input_satisfies_the_input_schema(template: Doc) -> None:
	schema = template["definition"]["input_schema"]
	Draft202012Validator.check_schema(schema)

	problems = [
		f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
		for error in Draft202012Validator(schema).iter_errors(template["sample_input"])
	]

	assert not problems
	assert schema["type"] == "object"
	assert schema["required"]
	assert set(schema["required"]) <= set(schema["properties"])


@each_template
def test_export_then_import_gives_the_template_back(template: Doc) -> None:
	exported = {
		"format": "apg.workflow/v1",
		"workflow": {
			"name": template["name"],
			"slug": template["slug"],
			"description": template["description"],
			"tags": template["tags"],
		},
		"definition": template["definition"],
	}

	assert load_document(dump_yaml(template), format="yaml") == template
	assert load_document(dump_json(template), format="json") == template
	assert load_document(dump_yaml(exported)) == exported
	assert load_document(dump_json(exported)) == exported


@each_template
def test_the_graph_reads_left_to_right(template: Doc) -> None:
	for level in _levels(template["definition"]):
		positions: dict[str, tuple[float, float]] = {}
		for node in level["nodes"]:
			assert node.get("name"), f"node {node['id']!r} has no name"
			position = node.get("position")
			assert position is not None, f"node {node['id']!r} has no position"
			point = (position["x"], position["y"])
			assert point not in positions.values(), f"node {node['id']!r} sits on another node"
			positions[node["id"]] = point
		for edge in level["edges"]:
			source, target = positions[edge["source"]], positions[edge["target"]]
			assert target[0] > source[0], f"edge {edge['source']} -> {edge['target']} points left"


@each_template
def test_http_calls_use_example_hosts_and_secret_references(template: Doc) -> None:
	inputs = list(_tasks(template["definition"], "http", "request"))

	for value in inputs:
		assert EXAMPLE_URL.match(value["url"]), value["url"]
	for auth in _auth_blocks(inputs):
		for key in ("token", "password", "value"):
			if key in auth:
				assert SECRET_REFERENCE.match(auth[key]), (
					f"auth {key} is not a secret reference: {auth[key]!r}"
				)


@each_template
def test_task_output_templates_read_only_what_the_worker_provides(template: Doc) -> None:
	# The step worker reshapes a result with only .result, .input and .run in scope; steps,
	# map items and loop indexes belong in a following set (or end) node instead.
	for node in _nodes(template["definition"]):
		output = node.get("config", {}).get("output") if node["type"] == "task" else None
		if output is None:
			continue
		assert not OUTSIDE_OUTPUT_CONTEXT.search(json.dumps(output)), f"node {node['id']!r}"


@each_template
def test_jq_programs_given_to_the_transform_connector_compile(template: Doc) -> None:
	for value in _tasks(template["definition"], "transform", "jq"):
		expression = value["expression"]
		assert "${" not in expression, "transform.jq evaluates its own expression; do not template it"
		compile_expression(expression)
