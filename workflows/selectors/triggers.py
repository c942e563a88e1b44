"""Reads of triggers."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from workflows.errors import NotFound
from workflows.models import Tenant, Trigger, User, Workflow
from workflows.permissions import require
from workflows.roles import Perm
from workflows.selectors.definitions import parse_uuid

__all__ = ["trigger_get", "trigger_list"]


def trigger_list(*, actor: User, workflow: Workflow) -> QuerySet[Trigger]:
	"""A workflow's triggers, newest first."""
	require(actor=actor, tenant=workflow.tenant, perm=Perm.WORKFLOW_VIEW, obj=workflow)
	return (
		Trigger.objects.for_tenant(workflow.tenant).filter(workflow=workflow).order_by("-created_at", "-id")
	)


def trigger_get(*, actor: User, tenant: Tenant, trigger_id: Any) -> Trigger:
	"""One trigger of the tenant; missing and another tenant's are the same NotFound."""
	require(actor=actor, tenant=tenant, perm=Perm.WORKFLOW_VIEW)
	pk = parse_uuid(trigger_id)
	trigger = (
		Trigger.objects.for_tenant(tenant).select_related("workflow").filter(pk=pk).first() if pk else None
	)
	if trigger is None:
		raise NotFound()
	return trigger
