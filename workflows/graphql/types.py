"""GraphQL object types: workflows, versions, runs, steps, events, approvals, templates, audit.

Types read their nested lists through the selectors, a whole page of parents at a time
(:func:`workflows.graphql.pagination.siblings`): ``workflows { runs { steps } }`` costs the
same number of queries for 2 workflows as for 100. Every object a type receives was fetched by
a selector that checked the caller's role; nested lists check again for their own permission.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Any

import graphene
from django.db.models import QuerySet

from workflows.api.runs_serializers import RUN_ORDERINGS, RunListQuerySerializer
from workflows.engine.status import RunStatus, StepStatus
from workflows.graphql.common import DEFAULT_PAGE, JSON, caller, page_size, validated
from workflows.graphql.pagination import Ordering, Page, paginate, paginate_each, siblings
from workflows.models import (
	Approval,
	Run,
	RunEvent,
	StepRun,
	Tenant,
	User,
	Workflow,
)
from workflows.selectors.definitions import workflow_version_list
from workflows.selectors.runs import run_events_after, run_list, run_list_time_field, run_steps

__all__ = [
	"AUDIT_ORDERING",
	"APPROVAL_ORDERING",
	"TEMPLATE_ORDERING",
	"VERSION_ORDERING",
	"WORKFLOW_ORDERINGS",
	"ApprovalConnection",
	"ApprovalStatusEnum",
	"ApprovalType",
	"RunConnection",
	"RunOrdering",
	"RunOrderingEnum",
	"RunStatusEnum",
	"RunType",
	"StepType",
	"TemplateConnection",
	"TemplateType",
	"WorkflowConnection",
	"WorkflowOrdering",
	"WorkflowOrderingEnum",
	"WorkflowType",
	"WorkflowVersionConnection",
	"WorkflowVersionType",
	"attach_attempts",
	"connection",
	"run_arguments",
	"run_page",
	"runs_filtered",
]

# --- enums -----------------------------------------------------------------------------------


class RunOrdering(StrEnum):
	"""Orders of a run list, as REST's ``ordering`` values."""

	CREATED_AT_DESC = "-created_at"
	CREATED_AT = "created_at"
	PRIORITY_DESC = "-priority"
	PRIORITY = "priority"


class WorkflowOrdering(StrEnum):
	"""Orders of the workflow list."""

	UPDATED_AT_DESC = "-updated_at"
	NAME = "name"


RunStatusEnum = graphene.Enum.from_enum(RunStatus, description="Where a run is in its lifecycle.")
StepStatusEnum = graphene.Enum.from_enum(StepStatus, description="Where a step attempt is.")
ApprovalStatusEnum = graphene.Enum.from_enum(
	Approval.Status, name="ApprovalStatus", description="Whether an approval can still be decided."
)
RunOrderingEnum = graphene.Enum.from_enum(RunOrdering, description="Newest first unless told otherwise.")
WorkflowOrderingEnum = graphene.Enum.from_enum(
	WorkflowOrdering, description="Most recently changed first, or by name."
)

WORKFLOW_ORDERINGS = {
	WorkflowOrdering.UPDATED_AT_DESC: Ordering("workflows:-updated_at", ("-updated_at", "-id")),
	WorkflowOrdering.NAME: Ordering("workflows:name", ("name", "id")),
}
VERSION_ORDERING = Ordering("versions", ("-number",))
TEMPLATE_ORDERING = Ordering("templates", ("name", "id"))
APPROVAL_ORDERING = Ordering("approvals", ("created_at", "id"))
AUDIT_ORDERING = Ordering("audit", ("-occurred_at", "-id"))
_RUN_ORDERINGS = {key: Ordering(f"runs:{key}", fields) for key, fields in RUN_ORDERINGS.items()}


def connection(
	name: str, node: type[graphene.ObjectType], description: str
) -> type[graphene.relay.Connection]:
	"""A Relay connection type ``<name>Connection`` of ``node`` (edges and nodes never null)."""
	meta = type("Meta", (), {"node": node, "strict_types": True, "description": description})
	return type(f"{name}Connection", (graphene.relay.Connection,), {"Meta": meta})


def _username(user: User | None) -> str | None:
	return user.get_username() if user is not None else None


# --- runs ----------------------------------------------------------------------------------------


def run_arguments() -> dict[str, Any]:
	"""The filters of a run list, as REST's ``GET /runs/`` (``workflow`` is added at the root)."""
	return {
		"first": graphene.Int(
			default_value=DEFAULT_PAGE, description="Page size (1 to the page size limit)."
		),
		"after": graphene.String(description="pageInfo.endCursor of the previous page."),
		"status": RunStatusEnum(),
		"version": graphene.Int(description="A version number."),
		"tag": graphene.String(),
		"created_after": graphene.DateTime(description="Runs created at or after this time."),
		"created_before": graphene.DateTime(description="Runs created before this time."),
		"ordering": RunOrderingEnum(default_value=RunOrdering.CREATED_AT_DESC),
	}


def runs_filtered(
	actor: User,
	tenant: Tenant,
	*,
	workflow: Any = None,
	status: Any = None,
	version: int | None = None,
	tag: str | None = None,
	created_after: datetime | None = None,
	created_before: datetime | None = None,
	ordering: RunOrdering | None = None,
) -> tuple[QuerySet[Run], Ordering]:
	"""The run list REST would give for these filters (checked by REST's serializer), and its order."""
	filters = validated(
		RunListQuerySerializer,
		workflow=workflow,
		status=status,
		version=version,
		tag=tag,
		created_after=created_after,
		created_before=created_before,
		ordering=str(ordering or RunOrdering.CREATED_AT_DESC),
	)
	runs = run_list(
		actor=actor,
		tenant=tenant,
		workflow_id=filters.get("workflow"),
		status=filters.get("status"),
		tag=filters.get("tag"),
		version=filters.get("version"),
		created_after=filters.get("created_after"),
		created_before=filters.get("created_before"),
		ordering=RUN_ORDERINGS[filters["ordering"]],
	).select_related("started_by")
	# A tag on its own is read in its tag rows' index order; cursors then use their copy of
	# the run's creation time (the same values), as REST does, so that a later page is an
	# index range read too.
	when = run_list_time_field(runs)
	order = _RUN_ORDERINGS[filters["ordering"]]
	if when != "created_at":
		order = Ordering(
			order.name, tuple(f.replace("created_at", when) for f in order.fields), typed_as=order.fields
		)
	return runs, order


def run_page(info: Any, first: int | None, after: str | None, **filters: Any) -> Page:
	"""One page of the tenant's runs."""
	actor, tenant = caller(info)
	size = page_size(first)
	runs, ordering = runs_filtered(actor, tenant, **filters)
	return paginate(runs, ordering=ordering, first=size, after=after)


def _load(root: Any, key: tuple[Any, ...], loader: Callable[[list[Any]], dict[Any, Any]]) -> Any:
	return siblings(root).load(key, loader)[root.pk]


# Where a step's latest attempt keeps the list of all its attempts.
_ATTEMPTS = "graphql_attempts"


class StepAttemptType(graphene.ObjectType, name="StepAttempt"):
	"""One attempt of a step: what went in, what came out, who executed it and when."""

	id = graphene.ID(required=True)
	attempt = graphene.Int(required=True)
	status = StepStatusEnum(required=True)
	input = JSON()
	output = JSON()
	error = JSON()
	queue = graphene.String(required=True)
	worker = graphene.String(required=True)
	scheduled_at = graphene.DateTime()
	started_at = graphene.DateTime()
	finished_at = graphene.DateTime()


class StepType(StepAttemptType, name="Step"):
	"""A step attempt (in a run's steps: the latest one) and every attempt of the same step, oldest first."""

	run_id = graphene.ID(required=True)
	run = graphene.Field(lambda: RunType, required=True)
	key = graphene.String(
		required=True, description="The activation, e.g. root:charge or root:each[3]:fetch."
	)
	node_id = graphene.String(required=True)
	node_type = graphene.String(required=True)
	frame = graphene.String(required=True)
	attempt_count = graphene.Int(required=True, description="Attempts so far.")
	attempts = graphene.List(graphene.NonNull(StepAttemptType), required=True)

	@staticmethod
	def resolve_attempts(root: StepRun, info: Any) -> list[StepRun]:
		return getattr(root, _ATTEMPTS, None) or [root]

	@staticmethod
	def resolve_attempt_count(root: StepRun, info: Any) -> int:
		return len(StepType.resolve_attempts(root, info))


def attach_attempts(step: StepRun, attempts: list[StepRun]) -> StepRun:
	"""``step`` answering ``attempts`` (and ``attemptCount``) with every attempt of its step."""
	setattr(step, _ATTEMPTS, attempts)
	return step


def with_attempts(attempts: list[StepRun]) -> list[StepRun]:
	"""The latest attempt of each step (in the order the steps started), each carrying all its attempts."""
	by_key: dict[str, list[StepRun]] = {}
	for attempt in attempts:
		by_key.setdefault(attempt.key, []).append(attempt)
	latest = []
	for tries in by_key.values():
		tries.sort(key=lambda step: step.attempt)
		latest.append(attach_attempts(tries[-1], tries))
	return latest


class RunEventType(graphene.ObjectType, name="RunEvent"):
	"""One entry of a run's append-only history."""

	seq = graphene.Int(required=True)
	type = graphene.String(required=True)
	step_key = graphene.String(required=True)
	data = JSON()
	created_at = graphene.DateTime(required=True)


class RunType(graphene.ObjectType, name="Run"):
	"""One execution of a published workflow version."""

	id = graphene.ID(required=True)
	workflow_id = graphene.ID(required=True)
	workflow = graphene.Field(lambda: WorkflowType, required=True)
	version = graphene.Field(lambda: WorkflowVersionType, required=True)
	version_number = graphene.Int(required=True)
	status = RunStatusEnum(required=True)
	is_finished = graphene.Boolean(required=True)
	priority = graphene.Int(required=True, description="0 to 9; 9 runs first under contention.")
	tags = graphene.List(graphene.NonNull(graphene.String), required=True)
	input = JSON()
	output = JSON()
	error = JSON()
	trigger_kind = graphene.String(required=True)
	trigger_ref = graphene.String(required=True)
	parent_run_id = graphene.ID()
	started_by = graphene.String(description="Username of who started it (none for triggers).")
	created_at = graphene.DateTime(required=True)
	started_at = graphene.DateTime()
	finished_at = graphene.DateTime()
	last_seq = graphene.Int(required=True, description="Sequence number of the latest event.")
	# Nested lists are nullable: a refusal there (a bad argument) empties that field alone.
	steps = graphene.List(
		graphene.NonNull(StepType), description="Each step's latest attempt, in start order."
	)
	events = graphene.List(
		graphene.NonNull(RunEventType),
		after=graphene.Int(default_value=0, description="The last sequence number seen."),
		first=graphene.Int(default_value=100, description="At most this many (up to the page size limit)."),
		description="The history after a sequence number, in order: what a client missed.",
	)

	@staticmethod
	def resolve_version_number(root: Run, info: Any) -> int:
		return root.version.number

	@staticmethod
	def resolve_started_by(root: Run, info: Any) -> str | None:
		return _username(root.started_by)

	@staticmethod
	def resolve_steps(root: Run, info: Any) -> list[StepRun]:
		actor, _ = caller(info)

		def load(runs: list[Run]) -> dict[Any, list[StepRun]]:
			by_run: dict[Any, list[StepRun]] = {run.pk: [] for run in runs}
			parents = {run.pk: run for run in runs}
			for step in run_steps(actor=actor, run=runs[0], batch=runs[1:]):
				step.run = parents[step.run_id]
				by_run[step.run_id].append(step)
			return {pk: with_attempts(found) for pk, found in by_run.items()}

		return _load(root, ("steps",), load)

	@staticmethod
	def resolve_events(
		root: Run, info: Any, after: int | None = 0, first: int | None = 100
	) -> list[RunEvent]:
		actor, _ = caller(info)
		size = page_size(first, default=100)
		after = after or 0

		def load(runs: list[Run]) -> dict[Any, list[RunEvent]]:
			by_run: dict[Any, list[RunEvent]] = {run.pk: [] for run in runs}
			events = run_events_after(actor=actor, run=runs[0], after=after, limit=size, batch=runs[1:])
			for event in events:
				by_run[event.run_id].append(event)
			return by_run

		return _load(root, ("events", after, size), load)


RunConnection = connection("Run", RunType, "A page of runs.")

# --- workflows and versions ----------------------------------------------------------------------


class WorkflowVersionType(graphene.ObjectType, name="WorkflowVersion"):
	"""A published, immutable snapshot of a workflow's definition."""

	id = graphene.ID(required=True)
	workflow_id = graphene.ID(required=True)
	workflow = graphene.Field(lambda: WorkflowType, required=True)
	number = graphene.Int(required=True)
	checksum = graphene.String(required=True)
	published_at = graphene.DateTime(required=True)
	published_by_id = graphene.ID()
	changelog = graphene.String(required=True)
	definition = JSON(required=True)


WorkflowVersionConnection = connection(
	"WorkflowVersion", WorkflowVersionType, "A page of published versions, newest first."
)


class WorkflowType(graphene.ObjectType, name="Workflow"):
	"""A workflow: its draft (edited live) and the versions published from it."""

	id = graphene.ID(required=True)
	slug = graphene.String(required=True)
	name = graphene.String(required=True)
	description = graphene.String(required=True)
	tags = graphene.List(graphene.NonNull(graphene.String), required=True)
	owner_id = graphene.ID()
	draft = JSON(required=True, description="The draft definition document.")
	draft_revision = graphene.Int(
		required=True, description="Send it back as expectedRevision when updating (REST's ETag)."
	)
	is_archived = graphene.Boolean(required=True)
	archived_at = graphene.DateTime()
	created_at = graphene.DateTime(required=True)
	updated_at = graphene.DateTime(required=True)
	# Nested lists are nullable: a refusal there (a bad argument) empties that field alone.
	versions = graphene.Field(
		WorkflowVersionConnection,
		first=graphene.Int(default_value=DEFAULT_PAGE),
		after=graphene.String(),
		description="Published versions, newest first.",
	)
	runs = graphene.Field(RunConnection, description="This workflow's runs.", **run_arguments())

	@staticmethod
	def resolve_versions(
		root: Workflow, info: Any, first: int | None = DEFAULT_PAGE, after: str | None = None
	) -> Page:
		actor, _ = caller(info)
		size = page_size(first)

		def load(workflows: list[Workflow]) -> dict[Any, Page]:
			versions = workflow_version_list(actor=actor, workflow=workflows[0], batch=workflows[1:])
			pages = paginate_each(
				versions,
				parent_field="workflow_id",
				parents=[w.pk for w in workflows],
				ordering=VERSION_ORDERING,
				first=size,
				after=after,
			)
			parents = {w.pk: w for w in workflows}
			for page in pages.values():
				for edge in page.edges:
					edge.node.workflow = parents[edge.node.workflow_id]
			return pages

		return _load(root, ("versions", size, after), load)

	@staticmethod
	def resolve_runs(
		root: Workflow, info: Any, first: int | None = DEFAULT_PAGE, after: str | None = None, **filters: Any
	) -> Page:
		actor, tenant = caller(info)
		size = page_size(first)

		def load(workflows: list[Workflow]) -> dict[Any, Page]:
			runs, ordering = runs_filtered(actor, tenant, **filters)
			return paginate_each(
				runs,
				parent_field="workflow_id",
				parents=[w.pk for w in workflows],
				ordering=ordering,
				first=size,
				after=after,
			)

		key = ("runs", size, after, *sorted((name, str(value)) for name, value in filters.items()))
		return _load(root, key, load)


WorkflowConnection = connection("Workflow", WorkflowType, "A page of workflows.")

# --- approvals and templates ---------------------------------------------------------------------


class ApprovalType(graphene.ObjectType, name="Approval"):
	"""A human task opened by an approval step."""

	id = graphene.ID(required=True)
	run_id = graphene.ID(required=True)
	run = graphene.Field(RunType, required=True)
	key = graphene.String(required=True)
	node_id = graphene.String(required=True)
	title = graphene.String(required=True)
	instructions = JSON()
	assignees = graphene.List(graphene.NonNull(graphene.String), required=True)
	role = graphene.String(
		required=True, description="The role that may decide it (empty: assignees or admins)."
	)
	form_schema = JSON(required=True, description="JSON Schema of the data an approver fills in.")
	deadline_at = graphene.DateTime()
	status = ApprovalStatusEnum(required=True)
	is_open = graphene.Boolean(required=True)
	decided_by = graphene.String()
	decided_at = graphene.DateTime()
	comment = graphene.String(required=True)
	data = JSON()
	created_at = graphene.DateTime(required=True)

	@staticmethod
	def resolve_decided_by(root: Approval, info: Any) -> str | None:
		return _username(root.decided_by)


ApprovalConnection = connection("Approval", ApprovalType, "A page of approvals, oldest first.")


class TemplateType(graphene.ObjectType, name="Template"):
	"""A reusable workflow: shipped with the product (global) or the organization's own."""

	id = graphene.ID(required=True)
	slug = graphene.String(required=True)
	name = graphene.String(required=True)
	description = graphene.String(required=True)
	category = graphene.String(required=True)
	industry = graphene.String(required=True)
	tags = graphene.List(graphene.NonNull(graphene.String), required=True)
	version = graphene.Int(required=True)
	is_global = graphene.Boolean(required=True)
	definition = JSON(required=True)
	sample_input = JSON(required=True)
	created_at = graphene.DateTime(required=True)
	updated_at = graphene.DateTime(required=True)


TemplateConnection = connection("Template", TemplateType, "A page of templates, by name.")
