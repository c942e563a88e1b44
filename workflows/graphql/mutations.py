"""GraphQL mutations: each checks its arguments like the REST endpoint, resolves the object in the
caller's tenant and calls one service, which checks the role and writes the audit event.

A refusal is a GraphQL error with ``extensions.code`` (see :mod:`workflows.graphql.errors`);
the payload (a mapping of the payload type's fields) holds what the service returned.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import graphene

from workflows.api.definitions_serializers import (
	PublishSerializer,
	TemplateInstantiateSerializer,
	WorkflowCreateSerializer,
	WorkflowUpdateSerializer,
)
from workflows.api.runs_serializers import (
	ApprovalDecisionSerializer,
	EventPublishSerializer,
	RunCancelSerializer,
	RunStartSerializer,
)
from workflows.errors import Conflict
from workflows.graphql.common import JSON, caller, uuid_argument, validated
from workflows.graphql.errors import StaleRevision
from workflows.graphql.types import ApprovalType, RunType, WorkflowType, WorkflowVersionType
from workflows.models import Run, User
from workflows.selectors.definitions import template_get, workflow_get
from workflows.selectors.runs import approval_get, run_get
from workflows.services.definitions import (
	template_instantiate,
	workflow_create,
	workflow_publish,
	workflow_update,
)
from workflows.services.runs import (
	approval_decide,
	event_publish,
	run_cancel,
	run_pause,
	run_rerun,
	run_resume,
	run_retry,
	run_start,
)

__all__ = ["Mutation"]


def _tags(most: int) -> graphene.List:
	return graphene.List(
		graphene.NonNull(graphene.String), description=f"Up to {most} tags of 1 to 50 characters."
	)


# --- workflows -----------------------------------------------------------------------------------


class WorkflowCreate(graphene.Mutation, name="WorkflowCreatePayload"):
	"""Create a workflow; its draft defaults to a start node wired to an end node (editors)."""

	class Arguments:
		name = graphene.String(required=True)
		slug = graphene.String(description="Derived from the name when left out.")
		description = graphene.String()
		tags = _tags(20)
		definition = JSON(description="The draft definition document (a JSON object).")

	workflow = graphene.Field(WorkflowType, required=True)

	@staticmethod
	def mutate(root: Any, info: Any, **arguments: Any) -> dict[str, Any]:
		actor, tenant = caller(info)
		values = validated(WorkflowCreateSerializer, **arguments)
		return {"workflow": workflow_create(actor=actor, tenant=tenant, **values)}


class WorkflowUpdate(graphene.Mutation, name="WorkflowUpdatePayload"):
	"""Change a workflow's metadata and/or draft (editors).

	Send the ``draftRevision`` you read as ``expectedRevision``: when someone changed the draft
	since, the update is refused (CONFLICT, with ``extensions.currentRevision``) instead of
	overwriting their work, as REST's If-Match.
	"""

	class Arguments:
		id = graphene.ID(required=True, description="An id or a slug.")
		expected_revision = graphene.Int(description="The draftRevision you read (REST's If-Match).")
		name = graphene.String()
		slug = graphene.String()
		description = graphene.String()
		tags = _tags(20)
		definition = JSON()

	workflow = graphene.Field(WorkflowType, required=True)

	@staticmethod
	def mutate(
		root: Any, info: Any, id: str, expected_revision: int | None = None, **arguments: Any
	) -> dict[str, Any]:
		actor, tenant = caller(info)
		workflow = workflow_get(actor=actor, tenant=tenant, workflow_id=id)
		values = validated(WorkflowUpdateSerializer, **arguments)
		try:
			workflow = workflow_update(
				actor=actor, workflow=workflow, if_revision=expected_revision, **values
			)
		except Conflict:
			# The service re-read the row under lock into ``workflow``: another revision than the
			# caller's means the conflict is the stale one.
			if expected_revision is not None and workflow.draft_revision != expected_revision:
				raise StaleRevision(expected_revision, workflow.draft_revision) from None
			raise
		return {"workflow": workflow}


class WorkflowPublish(graphene.Mutation, name="WorkflowPublishPayload"):
	"""Validate the draft and publish it as the next version (editors).

	A draft identical to the latest version publishes nothing: ``created`` is false and
	``version`` is that latest version. An invalid draft is refused (VALIDATION) with every
	problem's pointer under ``/definition``.
	"""

	class Arguments:
		id = graphene.ID(required=True, description="An id or a slug.")
		changelog = graphene.String()

	version = graphene.Field(WorkflowVersionType, required=True)
	created = graphene.Boolean(required=True)

	@staticmethod
	def mutate(root: Any, info: Any, id: str, changelog: str | None = None) -> dict[str, Any]:
		actor, tenant = caller(info)
		workflow = workflow_get(actor=actor, tenant=tenant, workflow_id=id)
		values = validated(PublishSerializer, changelog=changelog)
		outcome = workflow_publish(actor=actor, workflow=workflow, changelog=values["changelog"])
		return {"version": outcome.version, "created": outcome.created}


class TemplateInstantiate(graphene.Mutation, name="TemplateInstantiatePayload"):
	"""Create a workflow whose draft is a copy of a template's definition (editors)."""

	class Arguments:
		id = graphene.ID(required=True, description="The template's id or slug.")
		name = graphene.String(description="Default: the template's name.")
		slug = graphene.String(description="Default: the template's slug (or one from the new name).")

	workflow = graphene.Field(WorkflowType, required=True)

	@staticmethod
	def mutate(root: Any, info: Any, id: str, **arguments: Any) -> dict[str, Any]:
		actor, tenant = caller(info)
		template = template_get(actor=actor, tenant=tenant, template_id=id)
		values = validated(TemplateInstantiateSerializer, **arguments)
		return {"workflow": template_instantiate(actor=actor, tenant=tenant, template=template, **values)}


# --- runs ----------------------------------------------------------------------------------------


class RunStart(graphene.Mutation, name="RunStartPayload"):
	"""Start a run of a workflow's published version (editors, operators).

	The input is checked against the version's input schema first: a bad input is refused
	(VALIDATION, pointers under ``/input``) and no run is created.
	"""

	class Arguments:
		workflow_id = graphene.ID(required=True, description="The workflow's id or slug.")
		input = JSON(description="The run's input; checked against the version's input schema.")
		version = graphene.Int(description="A version number; default: the latest.")
		priority = graphene.Int(description="0 to 9; 9 runs first under contention.")
		tags = _tags(50)

	run = graphene.Field(RunType, required=True)

	@staticmethod
	def mutate(root: Any, info: Any, workflow_id: str, **arguments: Any) -> dict[str, Any]:
		actor, tenant = caller(info)
		workflow = workflow_get(actor=actor, tenant=tenant, workflow_id=workflow_id)
		values = validated(RunStartSerializer, **arguments)
		return {"run": run_start(actor=actor, workflow=workflow, **values)}


def _run(info: Any, id: str) -> tuple[Any, Run]:
	actor, tenant = caller(info)
	return actor, run_get(actor=actor, tenant=tenant, run_id=uuid_argument(id, noun="run id"))


class RunCancel(graphene.Mutation, name="RunCancelPayload"):
	"""Stop a run; with ``compensate`` its completed steps are undone first (operators)."""

	class Arguments:
		id = graphene.ID(required=True)
		compensate = graphene.Boolean(default_value=False)
		reason = graphene.String(default_value="")

	run = graphene.Field(RunType, required=True)

	@staticmethod
	def mutate(
		root: Any, info: Any, id: str, compensate: bool | None = False, reason: str | None = ""
	) -> dict[str, Any]:
		actor, run = _run(info, id)
		values = validated(RunCancelSerializer, compensate=compensate, reason=reason)
		return {"run": run_cancel(actor=actor, run=run, **values)}


class _RunLifecycle(graphene.Mutation):
	"""A mutation on one run; the payload holds the run as the service left it."""

	class Meta:
		abstract = True

	class Arguments:
		id = graphene.ID(required=True)

	run = graphene.Field(RunType, required=True)

	@classmethod
	def act(cls, actor: User, run: Run) -> Run:
		"""Call the service."""
		raise NotImplementedError

	@classmethod
	def mutate(cls, root: Any, info: Any, id: str) -> dict[str, Any]:
		actor, run = _run(info, id)
		return {"run": cls.act(actor, run)}


class RunPause(_RunLifecycle, name="RunPausePayload"):
	"""Dispatch nothing new until resumed (operators)."""

	@classmethod
	def act(cls, actor: User, run: Run) -> Run:
		return run_pause(actor=actor, run=run)


class RunResume(_RunLifecycle, name="RunResumePayload"):
	"""Continue a paused run (operators)."""

	@classmethod
	def act(cls, actor: User, run: Run) -> Run:
		return run_resume(actor=actor, run=run)


class RunRetry(_RunLifecycle, name="RunRetryPayload"):
	"""Retry a failed run from its failed steps, keeping every earlier output (operators)."""

	@classmethod
	def act(cls, actor: User, run: Run) -> Run:
		return run_retry(actor=actor, run=run)


class RunRerun(_RunLifecycle, name="RunRerunPayload"):
	"""Start a new run of the same version with the same input (operators); the payload's run is the new one."""

	@classmethod
	def act(cls, actor: User, run: Run) -> Run:
		return run_rerun(actor=actor, run=run)


# --- approvals and events ------------------------------------------------------------------------


class _ApprovalDecision(graphene.Mutation):
	"""Decide an open approval; the payload holds it as decided."""

	class Meta:
		abstract = True

	class Arguments:
		id = graphene.ID(required=True)
		comment = graphene.String(default_value="")
		data = JSON(description="The form's answers; checked against its schema when approving.")

	approval = graphene.Field(ApprovalType, required=True)
	decision: ClassVar[Literal["approved", "rejected"]]

	@classmethod
	def mutate(
		cls, root: Any, info: Any, id: str, comment: str | None = "", data: Any = None
	) -> dict[str, Any]:
		actor, tenant = caller(info)
		approval = approval_get(actor=actor, tenant=tenant, approval_id=uuid_argument(id, noun="approval id"))
		values = validated(ApprovalDecisionSerializer, comment=comment, data=data)
		decided = approval_decide(
			actor=actor,
			approval=approval,
			decision=cls.decision,
			comment=values["comment"],
			data=values.get("data"),
		)
		return {"approval": decided}


class ApprovalApprove(_ApprovalDecision, name="ApprovalApprovePayload"):
	"""Approve an open approval: its assignees, its role, or admins (form errors: VALIDATION under /data)."""

	decision = "approved"


class ApprovalReject(_ApprovalDecision, name="ApprovalRejectPayload"):
	"""Reject an open approval: its assignees, its role, or admins."""

	decision = "rejected"


class EventPublish(graphene.Mutation, name="EventPublishPayload"):
	"""Deliver an event to the runs waiting for it and to event triggers (operators)."""

	class Arguments:
		type = graphene.String(required=True, description="e.g. order.paid")
		correlation = JSON(description="Matched against the waits' correlation.")
		payload = JSON()

	event_id = graphene.ID(required=True)
	delivered = graphene.Int(required=True, description="Waiting runs it was delivered to.")
	kept = graphene.Boolean(required=True, description="No run waited: kept for a wait that starts soon.")
	started = graphene.Int(required=True, description="Event triggers it was handed to.")

	@staticmethod
	def mutate(root: Any, info: Any, **arguments: Any) -> dict[str, Any]:
		actor, tenant = caller(info)
		values = validated(EventPublishSerializer, **arguments)
		outcome = event_publish(actor=actor, tenant=tenant, source="graphql", **values)
		return {
			"event_id": outcome.event.pk,
			"delivered": outcome.delivered,
			"kept": outcome.kept,
			"started": outcome.started,
		}


class Mutation(graphene.ObjectType):
	"""Root mutations."""

	workflow_create = WorkflowCreate.Field()
	workflow_update = WorkflowUpdate.Field()
	workflow_publish = WorkflowPublish.Field()
	template_instantiate = TemplateInstantiate.Field()
	run_start = RunStart.Field()
	run_cancel = RunCancel.Field()
	run_pause = RunPause.Field()
	run_resume = RunResume.Field()
	run_retry = RunRetry.Field()
	run_rerun = RunRerun.Field()
	approval_approve = ApprovalApprove.Field()
	approval_reject = ApprovalReject.Field()
	event_publish = EventPublish.Field()
