"""The database-backed answers to "does this exist?" that definition validation asks."""

from __future__ import annotations

from typing import Literal

from workflows.dsl import ActionInfo
from workflows.models import Membership, Tenant, Workflow, WorkflowVersion
from workflows.roles import Role

__all__ = ["TenantReferenceResolver"]


class TenantReferenceResolver:
	"""Resolves connector actions, sub-workflows, roles and users within one tenant."""

	def __init__(self, tenant: Tenant) -> None:
		self.tenant = tenant

	def connector_action(self, connector: str, action: str) -> ActionInfo | None:
		from connectors.registry import default_registry

		found = default_registry().get_action(connector, action)
		return None if found is None else ActionInfo(input_schema=found.input_schema())

	def workflow_exists(self, slug: str, version: int | Literal["latest"]) -> bool:
		versions = WorkflowVersion.objects.for_tenant(self.tenant).filter(
			workflow__slug=slug, workflow__deleted_at__isnull=True
		)
		if version != "latest":
			versions = versions.filter(number=version)
		return versions.exists() or (
			version == "latest" and Workflow.objects.for_tenant(self.tenant).filter(slug=slug).exists()
		)

	def role_exists(self, role: str) -> bool:
		return role in {r.value for r in Role}

	def user_exists(self, username: str) -> bool:
		return (
			Membership.objects.for_tenant(self.tenant)
			.filter(user__username=username, user__is_active=True)
			.exists()
		)
