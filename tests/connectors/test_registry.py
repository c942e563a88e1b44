"""The registry: unique names, lookups, and the catalog the marketplace and designer palette show."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel

from connectors.builtin import builtin_connectors
from connectors.registry import DuplicateConnectorError, Registry, default_registry, load_builtins
from connectors.sdk import ActionContext, Connector


class Nothing(BaseModel):
	pass


def make_connector(name: str, version: str = "1.0.0") -> Connector:
	connector = Connector(name, name.title(), f"The {name} connector.", version)

	@connector.action(name="ping", title="Ping", description="Answers.", input=Nothing, output=Nothing)
	async def ping(ctx: ActionContext, params: Nothing) -> Nothing:
		return params

	return connector


def test_a_connector_name_is_registered_once() -> None:
	registry = Registry([make_connector("crm", "1.0.0")])

	with pytest.raises(DuplicateConnectorError, match=r"'crm' is already registered \(version 1.0.0\)"):
		registry.register(make_connector("crm", "2.0.0"))
	kept = registry.get("crm")
	assert kept is not None
	assert kept.version == "1.0.0"


def test_actions_are_looked_up_by_connector_and_action_name() -> None:
	crm = make_connector("crm")
	registry = Registry()
	assert registry.register(crm) is crm

	assert registry.get_action("crm", "ping") is crm.actions["ping"]
	assert registry.get_action("crm", "pong") is None
	assert registry.get_action("erp", "ping") is None
	assert "crm" in registry
	assert len(registry) == 1
	assert repr(registry) == "Registry(['crm'])"


def test_the_catalog_lists_connectors_and_actions_sorted_with_schemas() -> None:
	registry = Registry([make_connector("zeta"), make_connector("alpha")])

	catalog = registry.catalog()

	assert [entry["name"] for entry in catalog] == ["alpha", "zeta"]
	assert catalog[0]["actions"][0]["key"] == "alpha.ping"
	assert set(catalog[0]) == {"name", "title", "description", "version", "actions"}
	assert set(catalog[0]["actions"][0]) == {
		"name",
		"key",
		"title",
		"description",
		"cpu_bound",
		"idempotent",
		"input_schema",
		"output_schema",
	}


def test_the_default_registry_holds_every_builtin_and_is_one_object() -> None:
	registry = default_registry()

	assert registry is default_registry()
	assert load_builtins() is registry
	assert [connector.name for connector in registry.connectors()] == [
		"compute",
		"delay",
		"fail",
		"http",
		"noop",
		"transform",
	]
	assert registry.get_action("http", "request") is not None


def test_loading_builtins_twice_into_a_registry_is_harmless_but_a_clash_is_refused() -> None:
	registry = load_builtins(load_builtins(Registry()))
	assert len(registry) == len(builtin_connectors())

	clashing = Registry([make_connector("http")])
	with pytest.raises(DuplicateConnectorError):
		load_builtins(clashing)


def test_importing_the_registry_imports_no_connector() -> None:
	code = (
		"import sys, connectors.registry\n"
		"loaded = [m for m in sys.modules if m.startswith(('connectors.builtin', 'httpx', 'django'))]\n"
		"print(loaded)"
	)
	result = subprocess.run(
		[sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
	)

	assert result.stdout.strip() == "[]"


def _walk_properties(schema: dict[str, Any], root: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
	"""Every (name, property schema) of an object schema, following $refs and unions."""
	found: list[tuple[str, dict[str, Any]]] = []
	if "$ref" in schema:
		name = schema["$ref"].rsplit("/", 1)[1]
		return _walk_properties(root["$defs"][name], root)
	for key in ("anyOf", "oneOf"):
		for member in schema.get(key, []):
			found += _walk_properties(member, root)
	for name, prop in schema.get("properties", {}).items():
		found.append((name, prop))
		found += _walk_properties(prop, root)
	return found


def test_every_builtin_field_is_documented_for_the_designer() -> None:
	catalog = default_registry().catalog()
	json.dumps(catalog)  # JSON-ready, as the API will serve it

	for connector in catalog:
		assert all(connector[key] for key in ("title", "description", "version"))
		for action in connector["actions"]:
			assert all(action[key] for key in ("title", "description"))
			for schema in (action["input_schema"], action["output_schema"]):
				Draft202012Validator.check_schema(schema)
				undocumented = [
					name for name, prop in _walk_properties(schema, schema) if not prop.get("description")
				]
				assert undocumented == [], f"{action['key']}: fields without a description: {undocumented}"
