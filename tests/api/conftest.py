"""Fixtures of the REST API tests: clients per role, workflows, and another tenant's objects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from workflows.models import Membership, Tenant, User, Workflow
from workflows.roles import Role
from workflows.services.definitions import template_publish, workflow_create, workflow_publish


def linear(*, value: Any = 1) -> dict[str, Any]:
	"""start -> set -> end: valid, and needing no connector."""
	return {
		"schema_version": "1.0",
		"nodes": [
			{"id": "start", "type": "start", "name": "Start", "config": {}},
			{"id": "compute", "type": "set", "name": "Compute", "config": {"values": {"v": value}}},
			{"id": "end", "type": "end", "name": "End", "config": {}},
		],
		"edges": [{"source": "start", "target": "compute"}, {"source": "compute", "target": "end"}],
	}


@pytest.fixture
def api(tenant: Tenant, owner: User, token_client: Callable[[User, Tenant], APIClient]) -> APIClient:
	"""The tenant owner's API client."""
	return token_client(owner, tenant)


@pytest.fixture
def role_client(
	tenant: Tenant,
	member_factory: Callable[..., User],
	token_client: Callable[[User, Tenant], APIClient],
) -> Callable[[Role | str], APIClient]:
	"""A client of a new member of ``tenant`` with the given role (the owner for ``owner``)."""

	def make(role: Role | str) -> APIClient:
		return token_client(member_factory(tenant, Role(role)), tenant)

	return make


@pytest.fixture
def workflow_factory(tenant: Tenant, owner: User) -> Callable[..., Workflow]:
	"""Make a workflow in ``tenant``: ``workflow_factory(name=..., published=True)``."""

	def make(*, published: bool = False, **overrides: Any) -> Workflow:
		values: dict[str, Any] = {"name": "Order intake", "definition": linear()} | overrides
		workflow = workflow_create(actor=owner, tenant=tenant, **values)
		if published:
			workflow_publish(actor=owner, workflow=workflow, changelog="first")
		return workflow

	return make


@pytest.fixture
def workflow(workflow_factory: Callable[..., Workflow]) -> Workflow:
	"""A workflow with a valid draft, not yet published."""
	return workflow_factory()


@pytest.fixture
def foreign(tenant_factory: Callable[..., Tenant]) -> dict[str, Any]:
	"""Another tenant's published workflow and its tenant template."""
	other = tenant_factory(name="Someone else")
	other_owner = Membership.objects.for_tenant(other).get().user
	workflow = workflow_create(actor=other_owner, tenant=other, name="Secret flow", definition=linear())
	workflow_publish(actor=other_owner, workflow=workflow)
	template = template_publish(actor=other_owner, workflow=workflow, category="Finance", industry="Banking")
	return {"tenant": other, "workflow": workflow, "template": template}
