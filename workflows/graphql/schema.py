"""The workflows app's root queries (and its mutations, from :mod:`workflows.graphql.mutations`).

Lists are Relay connections (``edges { cursor node }``, ``pageInfo``; ``first``/``after``)
with REST's filters. Single objects are looked up by the same ids REST uses (UUIDs; a
workflow or template also by slug): no Relay global ids, so an id read from one API works in
the other. Another tenant's id is answered exactly like a missing one: NOT_FOUND.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import graphene

from workflows.api.definitions_serializers import TemplateListQuerySerializer, WorkflowListQuerySerializer
from workflows.graphql.common import DEFAULT_PAGE, caller, page_size, uuid_argument, validated
from workflows.graphql.mutations import Mutation
from workflows.graphql.pagination import Page, paginate, together
from workflows.graphql.tenancy import AuditEventConnection, AuditEventType, MemberType, TenantType
from workflows.graphql.types import (
	APPROVAL_ORDERING,
	AUDIT_ORDERING,
	TEMPLATE_ORDERING,
	WORKFLOW_ORDERINGS,
	ApprovalConnection,
	ApprovalType,
	RunConnection,
	RunType,
	StepType,
	TemplateConnection,
	TemplateType,
	WorkflowConnection,
	WorkflowOrdering,
	WorkflowOrderingEnum,
	WorkflowType,
	WorkflowVersionType,
	attach_attempts,
	run_arguments,
	run_page,
)
from workflows.models import Approval, Run, StepRun, Workflow, WorkflowTemplate, WorkflowVersion
from workflows.permissions import membership_for
from workflows.selectors.definitions import (
	template_get,
	template_list,
	workflow_get,
	workflow_list,
	workflow_version_get,
)
from workflows.selectors.runs import approval_get, approval_inbox, run_get, step_get_with_attempts
from workflows.selectors.tenancy import audit_event_list, member_list

__all__ = ["Mutation", "Query"]


def _page_arguments() -> dict[str, Any]:
	return {
		"first": graphene.Int(
			default_value=DEFAULT_PAGE, description="Page size (1 to the page size limit)."
		),
		"after": graphene.String(description="pageInfo.endCursor of the previous page."),
	}


class Viewer(graphene.ObjectType):
	"""The caller in the tenant the request works in."""

	username = graphene.String(required=True)
	role = graphene.String()
	tenant = graphene.Field(TenantType, required=True)


class Query(graphene.ObjectType):
	"""Root queries."""

	viewer = graphene.Field(Viewer, required=True)
	members = graphene.List(graphene.NonNull(MemberType), required=True)
	audit_events = graphene.List(
		graphene.NonNull(AuditEventType),
		required=True,
		first=graphene.Int(default_value=50),
		action=graphene.String(),
		deprecation_reason="Use auditLog: a paginated connection with every REST filter.",
	)
	audit_log = graphene.Field(
		AuditEventConnection,
		required=True,
		description="The audit trail, newest first (admins and owners).",
		action=graphene.String(description="e.g. membership.update"),
		object_type=graphene.String(description="e.g. workflows.membership"),
		object_id=graphene.String(),
		actor_id=graphene.ID(description="Who acted (a user id)."),
		since=graphene.DateTime(description="At or after this time."),
		until=graphene.DateTime(description="Before this time."),
		**_page_arguments(),
	)

	workflows = graphene.Field(
		WorkflowConnection,
		required=True,
		description="The organization's workflows.",
		tag=graphene.String(),
		search=graphene.String(description="In the name, slug or description."),
		include_archived=graphene.Boolean(default_value=False),
		ordering=WorkflowOrderingEnum(default_value=WorkflowOrdering.UPDATED_AT_DESC),
		**_page_arguments(),
	)
	workflow = graphene.Field(WorkflowType, id=graphene.ID(required=True, description="An id or a slug."))
	workflow_version = graphene.Field(
		WorkflowVersionType,
		workflow_id=graphene.ID(required=True, description="The workflow's id or slug."),
		number=graphene.Int(required=True),
	)
	runs = graphene.Field(
		RunConnection,
		required=True,
		description="The organization's runs.",
		workflow=graphene.ID(description="A workflow id."),
		**run_arguments(),
	)
	run = graphene.Field(RunType, id=graphene.ID(required=True))
	step = graphene.Field(StepType, id=graphene.ID(required=True, description="The id of any attempt."))
	approvals = graphene.Field(
		ApprovalConnection,
		required=True,
		description="My inbox: open approvals I may decide, oldest first.",
		**_page_arguments(),
	)
	approval = graphene.Field(ApprovalType, id=graphene.ID(required=True))
	templates = graphene.Field(
		TemplateConnection,
		required=True,
		description="Shipped templates and the organization's own.",
		category=graphene.String(),
		industry=graphene.String(),
		tag=graphene.String(),
		search=graphene.String(description="In the name or description."),
		**_page_arguments(),
	)
	template = graphene.Field(TemplateType, id=graphene.ID(required=True, description="An id or a slug."))

	# --- tenancy and audit ---------------------------------------------------------------------

	@staticmethod
	def resolve_viewer(root: Any, info: Any) -> dict[str, Any]:
		user, tenant = caller(info)
		membership = membership_for(user=user, tenant=tenant)
		return {
			"username": user.get_username(),
			"role": membership.role if membership else None,
			"tenant": tenant,
		}

	@staticmethod
	def resolve_members(root: Any, info: Any) -> Any:
		user, tenant = caller(info)
		return member_list(actor=user, tenant=tenant)

	@staticmethod
	def resolve_audit_events(root: Any, info: Any, first: int | None = 50, action: str | None = None) -> Any:
		user, tenant = caller(info)
		size = 50 if first is None else max(0, min(first, 500))
		return audit_event_list(actor=user, tenant=tenant, action=action)[:size]

	@staticmethod
	def resolve_audit_log(
		root: Any,
		info: Any,
		first: int | None = DEFAULT_PAGE,
		after: str | None = None,
		action: str | None = None,
		object_type: str | None = None,
		object_id: str | None = None,
		actor_id: str | None = None,
		since: datetime | None = None,
		until: datetime | None = None,
	) -> Page:
		user, tenant = caller(info)
		size = page_size(first)
		events = audit_event_list(
			actor=user,
			tenant=tenant,
			action=action or None,
			object_type=object_type or None,
			object_id=object_id or None,
			actor_id=uuid_argument(actor_id, pointer="/actorId", noun="user id") if actor_id else None,
			since=since,
			until=until,
		)
		return paginate(events, ordering=AUDIT_ORDERING, first=size, after=after)

	# --- workflows ------------------------------------------------------------------------------

	@staticmethod
	def resolve_workflows(
		root: Any,
		info: Any,
		first: int | None = DEFAULT_PAGE,
		after: str | None = None,
		tag: str | None = None,
		search: str | None = None,
		include_archived: bool | None = False,
		ordering: WorkflowOrdering | None = WorkflowOrdering.UPDATED_AT_DESC,
	) -> Page:
		user, tenant = caller(info)
		size = page_size(first)
		query = validated(
			WorkflowListQuerySerializer,
			tag=tag,
			search=search,
			include_archived=include_archived,
			ordering=str(ordering or WorkflowOrdering.UPDATED_AT_DESC),
		)
		workflows = workflow_list(
			actor=user,
			tenant=tenant,
			include_archived=query["include_archived"],
			tag=query.get("tag"),
			search=query.get("search"),
		)
		return paginate(
			workflows,
			ordering=WORKFLOW_ORDERINGS[WorkflowOrdering(query["ordering"])],
			first=size,
			after=after,
		)

	@staticmethod
	def resolve_workflow(root: Any, info: Any, id: str) -> Workflow:
		user, tenant = caller(info)
		return workflow_get(actor=user, tenant=tenant, workflow_id=id)

	@staticmethod
	def resolve_workflow_version(root: Any, info: Any, workflow_id: str, number: int) -> WorkflowVersion:
		user, tenant = caller(info)
		workflow = workflow_get(actor=user, tenant=tenant, workflow_id=workflow_id)
		return workflow_version_get(actor=user, workflow=workflow, number=number)

	@staticmethod
	def resolve_templates(
		root: Any,
		info: Any,
		first: int | None = DEFAULT_PAGE,
		after: str | None = None,
		category: str | None = None,
		industry: str | None = None,
		tag: str | None = None,
		search: str | None = None,
	) -> Page:
		user, tenant = caller(info)
		size = page_size(first)
		query = validated(
			TemplateListQuerySerializer, category=category, industry=industry, tag=tag, search=search
		)
		templates = template_list(
			actor=user,
			tenant=tenant,
			category=query.get("category"),
			industry=query.get("industry"),
			tag=query.get("tag"),
			search=query.get("search"),
		)
		return paginate(templates, ordering=TEMPLATE_ORDERING, first=size, after=after)

	@staticmethod
	def resolve_template(root: Any, info: Any, id: str) -> WorkflowTemplate:
		user, tenant = caller(info)
		return template_get(actor=user, tenant=tenant, template_id=id)

	# --- runs, steps, approvals -----------------------------------------------------------------

	@staticmethod
	def resolve_runs(
		root: Any, info: Any, first: int | None = DEFAULT_PAGE, after: str | None = None, **filters: Any
	) -> Page:
		return run_page(info, first, after, **filters)

	@staticmethod
	def resolve_run(root: Any, info: Any, id: str) -> Run:
		user, tenant = caller(info)
		return run_get(actor=user, tenant=tenant, run_id=uuid_argument(id, noun="run id"))

	@staticmethod
	def resolve_step(root: Any, info: Any, id: str) -> StepRun:
		user, tenant = caller(info)
		step, attempts = step_get_with_attempts(
			actor=user, tenant=tenant, step_id=uuid_argument(id, noun="step id")
		)
		return attach_attempts(step, attempts)

	@staticmethod
	def resolve_approvals(
		root: Any, info: Any, first: int | None = DEFAULT_PAGE, after: str | None = None
	) -> Page:
		user, tenant = caller(info)
		size = page_size(first)
		inbox = approval_inbox(actor=user, tenant=tenant).select_related(
			"decided_by", "run__workflow", "run__version", "run__started_by"
		)
		page = paginate(inbox, ordering=APPROVAL_ORDERING, first=size, after=after)
		# Their runs were joined in, one instance each: grouped, so run fields load once for all.
		together(edge.node.run for edge in page.edges)
		return page

	@staticmethod
	def resolve_approval(root: Any, info: Any, id: str) -> Approval:
		user, tenant = caller(info)
		return approval_get(actor=user, tenant=tenant, approval_id=uuid_argument(id, noun="approval id"))
