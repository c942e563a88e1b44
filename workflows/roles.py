"""Roles and what each may do: the one place the role -> permission mapping lives.

Interfaces declare the permission an action needs (``Perm.RUN_OPERATE``); services check it
with :func:`workflows.permissions.require`. django-guardian object grants add to a role
for one shared object; they never take away.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ROLE_PERMISSIONS", "Perm", "Role", "role_allows"]


class Role(StrEnum):
	"""A member's role in a tenant, from least to most trusted."""

	VIEWER = "viewer"
	EDITOR = "editor"
	OPERATOR = "operator"
	ADMIN = "admin"
	OWNER = "owner"

	@property
	def label(self) -> str:
		"""Human-readable name."""
		return self.value.capitalize()


class Perm(StrEnum):
	"""Something a member may do in a tenant."""

	TENANT_VIEW = "tenant.view"
	TENANT_MANAGE = "tenant.manage"
	TENANT_DELETE = "tenant.delete"
	MEMBER_VIEW = "member.view"
	MEMBER_MANAGE = "member.manage"
	OWNER_MANAGE = "owner.manage"
	AUDIT_VIEW = "audit.view"
	TOKEN_MANAGE_OWN = "token.manage_own"
	TOKEN_MANAGE_ANY = "token.manage_any"
	OBJECT_RESTORE = "object.restore"
	OBJECT_SHARE = "object.share"
	WORKFLOW_VIEW = "workflow.view"
	WORKFLOW_EDIT = "workflow.edit"
	WORKFLOW_PUBLISH = "workflow.publish"
	WORKFLOW_DELETE = "workflow.delete"
	TEMPLATE_PUBLISH = "template.publish"
	RUN_VIEW = "run.view"
	RUN_START = "run.start"
	RUN_OPERATE = "run.operate"
	APPROVAL_DECIDE = "approval.decide"
	EVENT_PUBLISH = "event.publish"
	TRIGGER_MANAGE = "trigger.manage"
	CONNECTION_VIEW = "connection.view"
	CONNECTION_MANAGE = "connection.manage"
	WEBHOOK_MANAGE = "webhook.manage"
	ANALYTICS_VIEW = "analytics.view"


_VIEWER = frozenset(
	{
		Perm.TENANT_VIEW,
		Perm.MEMBER_VIEW,
		Perm.TOKEN_MANAGE_OWN,
		Perm.WORKFLOW_VIEW,
		Perm.RUN_VIEW,
		Perm.CONNECTION_VIEW,
		Perm.ANALYTICS_VIEW,
	}
)
# Editors build workflows and try them; operators run production: starting, stopping and
# retrying runs, deciding approvals, publishing events. Neither includes the other.
_EDITOR = _VIEWER | {
	Perm.WORKFLOW_EDIT,
	Perm.WORKFLOW_PUBLISH,
	Perm.WORKFLOW_DELETE,
	Perm.RUN_START,
	Perm.TRIGGER_MANAGE,
	Perm.CONNECTION_MANAGE,
}
_OPERATOR = _VIEWER | {Perm.RUN_START, Perm.RUN_OPERATE, Perm.APPROVAL_DECIDE, Perm.EVENT_PUBLISH}
_ADMIN = (
	_EDITOR
	| _OPERATOR
	| {
		Perm.TENANT_MANAGE,
		Perm.MEMBER_MANAGE,
		Perm.AUDIT_VIEW,
		Perm.TOKEN_MANAGE_ANY,
		Perm.OBJECT_RESTORE,
		Perm.OBJECT_SHARE,
		Perm.TEMPLATE_PUBLISH,
		Perm.WEBHOOK_MANAGE,
	}
)
_OWNER = _ADMIN | {Perm.TENANT_DELETE, Perm.OWNER_MANAGE}

ROLE_PERMISSIONS: dict[Role, frozenset[Perm]] = {
	Role.VIEWER: _VIEWER,
	Role.EDITOR: frozenset(_EDITOR),
	Role.OPERATOR: frozenset(_OPERATOR),
	Role.ADMIN: frozenset(_ADMIN),
	Role.OWNER: frozenset(_OWNER),
}


def role_allows(role: Role | str, perm: Perm) -> bool:
	"""Whether ``role`` carries ``perm``."""
	return perm in ROLE_PERMISSIONS[Role(role)]
