"""Validation against a tenant: connector actions, sub-workflows, roles and users; shipped templates loading."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.definitions.test_workflows import linear
from workflows import defaults
from workflows.models import Tenant, User, WorkflowTemplate
from workflows.references import TenantReferenceResolver
from workflows.roles import Role
from workflows.services.definitions import workflow_create, workflow_publish, workflow_validate

pytestmark = pytest.mark.django_db


def _with_task(action: str, task_input: dict[str, object]) -> dict[str, object]:
	definition = linear()
	definition["nodes"][1] = {
		"id": "compute",
		"type": "task",
		"name": "Call",
		"config": {"connector": action.split(".")[0], "action": action.split(".")[1], "input": task_input},
	}
	return definition


def test_known_actions_pass_and_unknown_ones_are_named(tenant: Tenant, owner: User) -> None:
	good = workflow_validate(
		actor=owner, tenant=tenant, definition=_with_task("http.request", {"url": "https://example.com"})
	)
	unknown = workflow_validate(actor=owner, tenant=tenant, definition=_with_task("smtp.send", {}))

	assert good.ok, good.errors
	assert not unknown.ok
	assert "smtp" in unknown.errors[0].message


def test_static_input_is_checked_against_the_action_schema(tenant: Tenant, owner: User) -> None:
	result = workflow_validate(
		actor=owner, tenant=tenant, definition=_with_task("delay.sleep", {"seconds": "soon"})
	)

	assert not result.ok
	assert result.errors[0].pointer.startswith("/nodes/1/config/input")


def test_sub_workflow_and_user_references(
	tenant: Tenant, owner: User, member_factory: Callable[..., User]
) -> None:
	member_factory(tenant, Role.OPERATOR, username="olivia")
	child = workflow_create(actor=owner, tenant=tenant, name="Child", definition=linear())
	resolver = TenantReferenceResolver(tenant)

	before_publish = (resolver.workflow_exists("child", "latest"), resolver.workflow_exists("child", 1))
	workflow_publish(actor=owner, workflow=child)

	assert before_publish == (True, False)
	assert resolver.workflow_exists("child", 1)
	assert not resolver.workflow_exists("child", 2)
	assert not resolver.workflow_exists("nobody", "latest")
	assert resolver.user_exists("olivia")
	assert not resolver.user_exists("mallory")
	assert resolver.role_exists("admin")
	assert not resolver.role_exists("emperor")


def test_load_default_data_installs_and_upgrades_only_newer_templates(
	tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
	(tmp_path / "double-it.yaml").write_text(
		"slug: double-it\nname: Double it\ndescription: d\ncategory: Demo\nindustry: General\n"
		"tags: [demo]\nversion: 1\nsample_input: {amount: 1}\n"
		"definition:\n  schema_version: '1.0'\n  nodes: [{id: start, type: start}, {id: end, type: end}]\n"
		"  edges: [{source: start, target: end}]\n"
	)
	monkeypatch.setattr(defaults, "TEMPLATES_DIR", tmp_path)

	first = defaults.load_default_data()
	again = defaults.load_default_data()
	(tmp_path / "double-it.yaml").write_text(
		(tmp_path / "double-it.yaml")
		.read_text()
		.replace("version: 1", "version: 2")
		.replace("name: Double it", "name: Double it twice")
	)
	upgraded = defaults.load_default_data()

	assert first == {"added": 1, "updated": 0}
	assert again == {"added": 0, "updated": 0}
	assert upgraded == {"added": 0, "updated": 1}
	template = WorkflowTemplate.objects.get(slug="double-it")
	assert (template.name, template.version, template.tenant) == ("Double it twice", 2, None)
