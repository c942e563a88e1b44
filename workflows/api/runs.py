"""REST endpoints for runs, steps, approvals, events and triggers.

Each view parses its input with a strict serializer, resolves objects in the request's
tenant (another tenant's id is the same 404 as a missing one), calls one service or selector
(which checks the role) and shapes the output. Service errors become problem+json in
:mod:`workflows.api.errors`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

from workflows.api.base import TenantAPIView
from workflows.api.runs_serializers import (
	RUN_LIST_VALUES,
	RUN_ORDERINGS,
	ApprovalDecisionSerializer,
	ApprovalSerializer,
	CronPreviewQuerySerializer,
	CronPreviewSerializer,
	EmptyRequestSerializer,
	EventOutcomeSerializer,
	EventPublishSerializer,
	IssuedTriggerSerializer,
	RunCancelSerializer,
	RunDetailSerializer,
	RunEventListSerializer,
	RunEventsQuerySerializer,
	RunListQuerySerializer,
	RunSerializer,
	RunsProblemSerializer,
	RunStartSerializer,
	StepDetailSerializer,
	TriggerCreateSerializer,
	TriggerSerializer,
	TriggerUpdateSerializer,
	run_list_items,
)
from workflows.models import StepRun
from workflows.selectors.definitions import workflow_get
from workflows.selectors.runs import (
	approval_get,
	approval_inbox,
	run_events_after,
	run_get,
	run_list,
	run_list_time_field,
	run_steps,
	step_get_with_attempts,
)
from workflows.selectors.triggers import trigger_get, trigger_list
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
from workflows.services.triggers import (
	IssuedTrigger,
	cron_preview,
	trigger_create,
	trigger_delete,
	trigger_disable,
	trigger_enable,
	trigger_rotate_secret,
	trigger_update,
)

__all__ = [
	"PROBLEM_RESPONSES",
	"ApprovalDecideView",
	"ApprovalInboxView",
	"CronPreviewView",
	"EventPublishView",
	"RunActionView",
	"RunCancelView",
	"RunDetailView",
	"RunEventsView",
	"RunListView",
	"RunRerunView",
	"RunStartView",
	"StepDetailView",
	"TriggerActionView",
	"TriggerDetailView",
	"TriggerListView",
	"problem_responses",
]

# --- schema helpers ------------------------------------------------------------------------------

PROBLEM_RESPONSES: dict[int, str] = {
	400: "Invalid request: `errors` lists every problem with a JSON pointer.",
	403: "Your role does not allow this.",
	404: "Not found (or in another tenant).",
	409: "The object's state does not allow this.",
}


def problem_responses(*codes: int) -> dict[int, OpenApiResponse]:
	"""Problem-details responses (``application/problem+json``) for an ``extend_schema``."""
	return {
		code: OpenApiResponse(
			response=RunsProblemSerializer,
			description=PROBLEM_RESPONSES.get(code, "Error."),
		)
		for code in codes
	}


def _paginated(name: str, item: type[serializers.Serializer]) -> serializers.Serializer:
	return inline_serializer(
		name,
		fields={
			"next": serializers.URLField(allow_null=True),
			"previous": serializers.URLField(allow_null=True),
			"results": item(many=True),
		},
	)


_CURSOR_PARAMS = [
	OpenApiParameter("cursor", OpenApiTypes.STR, description="From `next` or `previous`."),
	OpenApiParameter("limit", OpenApiTypes.INT, description="Page size (default 50, at most 500)."),
]


def _parse(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
	parsed = serializer_class(data=data)
	parsed.is_valid(raise_exception=True)
	return dict(parsed.validated_data)


def _query(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
	return _parse(serializer_class, request.query_params.dict())


class _RunCursor(CursorPagination):
	page_size = 50
	max_page_size = 500
	page_size_query_param = "limit"

	def __init__(self, ordering: Iterable[str]) -> None:
		self.ordering = tuple(ordering)


# --- lookups -------------------------------------------------------------------------------------
# Reads workflows/selectors has no function for yet (a step by id, an approval by id, a
# workflow's triggers): tenant-scoped and permission-checked like selectors, kept private here
# until they move to workflows/selectors/.


# --- runs ----------------------------------------------------------------------------------------

_WORKFLOW_PARAM = OpenApiParameter(
	"workflow_id", OpenApiTypes.STR, OpenApiParameter.PATH, description="A workflow's id or slug."
)


class RunStartView(TenantAPIView):
	"""Start a run of a workflow's published version."""

	@extend_schema(
		operation_id="runs_start",
		parameters=[_WORKFLOW_PARAM],
		request=RunStartSerializer,
		responses={201: RunSerializer, **problem_responses(400, 403, 404, 409)},
		tags=["runs"],
	)
	def post(self, request: Request, workflow_id: str) -> Response:
		values = _parse(RunStartSerializer, request.data)
		workflow = workflow_get(actor=self.actor, tenant=self.tenant, workflow_id=workflow_id)
		run = run_start(actor=self.actor, workflow=workflow, **values)
		return Response(RunSerializer(run).data, status=status.HTTP_201_CREATED)


class RunListView(TenantAPIView):
	"""The tenant's runs, filtered, with cursor pagination."""

	@extend_schema(
		operation_id="runs_list",
		parameters=[RunListQuerySerializer, *_CURSOR_PARAMS],
		responses={200: _paginated("PaginatedRunList", RunSerializer), **problem_responses(400, 403)},
		tags=["runs"],
	)
	def get(self, request: Request) -> Response:
		filters = _query(RunListQuerySerializer, request)
		runs = run_list(
			actor=self.actor,
			tenant=self.tenant,
			workflow_id=filters.get("workflow"),
			status=filters.get("status"),
			tag=filters.get("tag"),
			version=filters.get("version"),
			created_after=filters.get("created_after"),
			created_before=filters.get("created_before"),
			ordering=RUN_ORDERINGS[filters["ordering"]],
		)
		# A list read through a tag's rows is ordered by their copy of created_at: the cursor's
		# position bounds that field too, so it bounds the index range read.
		when = run_list_time_field(runs)
		paginator = _RunCursor(str(field) for field in runs.query.order_by)
		values = RUN_LIST_VALUES if when == "created_at" else (*RUN_LIST_VALUES, when)
		page = paginator.paginate_queryset(runs.values(*values).order_by(), request, view=self)
		return paginator.get_paginated_response(run_list_items(page or []))


class RunDetailView(TenantAPIView):
	"""A run with its steps: the latest attempt of each, with its attempt count."""

	@extend_schema(
		operation_id="runs_retrieve",
		responses={200: RunDetailSerializer, **problem_responses(403, 404)},
		tags=["runs"],
	)
	def get(self, request: Request, run_id: str) -> Response:
		run = run_get(actor=self.actor, tenant=self.tenant, run_id=run_id)
		latest: dict[str, StepRun] = {}
		counts: dict[str, int] = {}
		for step in run_steps(actor=self.actor, run=run):
			counts[step.key] = counts.get(step.key, 0) + 1
			if step.key not in latest or step.attempt > latest[step.key].attempt:
				latest[step.key] = step
		for key, step in latest.items():
			step.attempts = counts[key]  # pyright: ignore[reportAttributeAccessIssue]
		run.step_summaries = list(latest.values())  # pyright: ignore[reportAttributeAccessIssue]
		return Response(RunDetailSerializer(run).data)


class RunCancelView(TenantAPIView):
	"""Cancel a run; with ``compensate`` its completed steps are undone first."""

	@extend_schema(
		operation_id="runs_cancel",
		request=RunCancelSerializer,
		responses={200: RunSerializer, **problem_responses(400, 403, 404, 409)},
		tags=["runs"],
	)
	def post(self, request: Request, run_id: str) -> Response:
		values = _parse(RunCancelSerializer, request.data)
		run = run_get(actor=self.actor, tenant=self.tenant, run_id=run_id)
		return Response(RunSerializer(run_cancel(actor=self.actor, run=run, **values)).data)


class RunActionView(TenantAPIView):
	"""Pause, resume or retry a run (``verb`` is set per route)."""

	verb: str = ""
	_SERVICES: dict[str, Any] = {"pause": run_pause, "resume": run_resume, "retry": run_retry}

	@extend_schema(
		request=EmptyRequestSerializer,
		responses={200: RunSerializer, **problem_responses(400, 403, 404, 409)},
		tags=["runs"],
	)
	def post(self, request: Request, run_id: str) -> Response:
		_parse(EmptyRequestSerializer, request.data)
		run = run_get(actor=self.actor, tenant=self.tenant, run_id=run_id)
		return Response(RunSerializer(self._SERVICES[self.verb](actor=self.actor, run=run)).data)


class RunRerunView(TenantAPIView):
	"""Start a new run of the same version with the same input."""

	@extend_schema(
		operation_id="runs_rerun",
		request=EmptyRequestSerializer,
		responses={201: RunSerializer, **problem_responses(400, 403, 404, 409)},
		tags=["runs"],
	)
	def post(self, request: Request, run_id: str) -> Response:
		_parse(EmptyRequestSerializer, request.data)
		run = run_get(actor=self.actor, tenant=self.tenant, run_id=run_id)
		return Response(
			RunSerializer(run_rerun(actor=self.actor, run=run)).data, status=status.HTTP_201_CREATED
		)


class RunEventsView(TenantAPIView):
	"""A run's history after a sequence number, in order: what a client missed."""

	@extend_schema(
		operation_id="runs_events",
		parameters=[RunEventsQuerySerializer],
		responses={200: RunEventListSerializer, **problem_responses(400, 403, 404)},
		tags=["runs"],
	)
	def get(self, request: Request, run_id: str) -> Response:
		page = _query(RunEventsQuerySerializer, request)
		run = run_get(actor=self.actor, tenant=self.tenant, run_id=run_id)
		events = run_events_after(actor=self.actor, run=run, after=page["after"], limit=page["limit"])
		return Response(
			RunEventListSerializer(
				{"run_id": run.pk, "status": run.status, "last_seq": run.last_seq, "events": events}
			).data
		)


class StepDetailView(TenantAPIView):
	"""A step attempt with its input, output and error, and every attempt of the same step."""

	@extend_schema(
		operation_id="steps_retrieve",
		responses={200: StepDetailSerializer, **problem_responses(403, 404)},
		tags=["runs"],
	)
	def get(self, request: Request, step_id: str) -> Response:
		step, attempts = step_get_with_attempts(actor=self.actor, tenant=self.tenant, step_id=step_id)
		step.attempts = attempts  # pyright: ignore[reportAttributeAccessIssue]
		return Response(StepDetailSerializer(step).data)


# --- approvals and events ------------------------------------------------------------------------


class ApprovalInboxView(TenantAPIView):
	"""Open approvals the caller may decide, oldest first."""

	@extend_schema(
		operation_id="approvals_inbox",
		responses={200: ApprovalSerializer(many=True), **problem_responses(403)},
		tags=["approvals"],
	)
	def get(self, request: Request) -> Response:
		inbox = approval_inbox(actor=self.actor, tenant=self.tenant)
		return Response(ApprovalSerializer(inbox.select_related("decided_by")[:500], many=True).data)


class ApprovalDecideView(TenantAPIView):
	"""Approve or reject an open approval (``decision`` is set per route)."""

	decision: str = "approved"

	@extend_schema(
		request=ApprovalDecisionSerializer,
		responses={200: ApprovalSerializer, **problem_responses(400, 403, 404, 409)},
		tags=["approvals"],
	)
	def post(self, request: Request, approval_id: str) -> Response:
		values = _parse(ApprovalDecisionSerializer, request.data)
		approval = approval_get(actor=self.actor, tenant=self.tenant, approval_id=approval_id)
		decided = approval_decide(
			actor=self.actor,
			approval=approval,
			decision="approved" if self.decision == "approved" else "rejected",
			comment=values["comment"],
			data=values.get("data"),
		)
		return Response(ApprovalSerializer(decided).data)


class EventPublishView(TenantAPIView):
	"""Publish an event to waiting runs and event triggers."""

	@extend_schema(
		operation_id="events_publish",
		request=EventPublishSerializer,
		responses={202: EventOutcomeSerializer, **problem_responses(400, 403)},
		tags=["events"],
	)
	def post(self, request: Request) -> Response:
		values = _parse(EventPublishSerializer, request.data)
		outcome = event_publish(actor=self.actor, tenant=self.tenant, source="api", **values)
		return Response(EventOutcomeSerializer(outcome).data, status=status.HTTP_202_ACCEPTED)


# --- triggers ------------------------------------------------------------------------------------


def _issued(issued: IssuedTrigger) -> dict[str, Any]:
	data = dict(IssuedTriggerSerializer(issued.trigger).data)
	data["secret"] = issued.secret
	return data


class TriggerListView(TenantAPIView):
	"""A workflow's triggers; create one (a webhook's secret is in the response, once)."""

	@extend_schema(
		operation_id="triggers_list",
		parameters=[_WORKFLOW_PARAM],
		responses={200: TriggerSerializer(many=True), **problem_responses(403, 404)},
		tags=["triggers"],
	)
	def get(self, request: Request, workflow_id: str) -> Response:
		workflow = workflow_get(actor=self.actor, tenant=self.tenant, workflow_id=workflow_id)
		return Response(TriggerSerializer(trigger_list(actor=self.actor, workflow=workflow), many=True).data)

	@extend_schema(
		operation_id="triggers_create",
		parameters=[_WORKFLOW_PARAM],
		request=TriggerCreateSerializer,
		responses={201: IssuedTriggerSerializer, **problem_responses(400, 403, 404)},
		tags=["triggers"],
	)
	def post(self, request: Request, workflow_id: str) -> Response:
		values = _parse(TriggerCreateSerializer, request.data)
		workflow = workflow_get(actor=self.actor, tenant=self.tenant, workflow_id=workflow_id)
		issued = trigger_create(actor=self.actor, tenant=self.tenant, workflow=workflow, **values)
		return Response(_issued(issued), status=status.HTTP_201_CREATED)


class TriggerDetailView(TenantAPIView):
	"""One trigger: read, change (``PATCH``), delete."""

	@extend_schema(
		operation_id="triggers_retrieve",
		responses={200: TriggerSerializer, **problem_responses(403, 404)},
		tags=["triggers"],
	)
	def get(self, request: Request, trigger_id: str) -> Response:
		trigger = trigger_get(actor=self.actor, tenant=self.tenant, trigger_id=trigger_id)
		return Response(TriggerSerializer(trigger).data)

	@extend_schema(
		operation_id="triggers_update",
		request=TriggerUpdateSerializer,
		responses={200: TriggerSerializer, **problem_responses(400, 403, 404)},
		tags=["triggers"],
	)
	def patch(self, request: Request, trigger_id: str) -> Response:
		values = _parse(TriggerUpdateSerializer, request.data)
		trigger = trigger_get(actor=self.actor, tenant=self.tenant, trigger_id=trigger_id)
		return Response(TriggerSerializer(trigger_update(actor=self.actor, trigger=trigger, **values)).data)

	@extend_schema(
		operation_id="triggers_destroy",
		responses={204: None, **problem_responses(403, 404)},
		tags=["triggers"],
	)
	def delete(self, request: Request, trigger_id: str) -> Response:
		trigger = trigger_get(actor=self.actor, tenant=self.tenant, trigger_id=trigger_id)
		trigger_delete(actor=self.actor, trigger=trigger)
		return Response(status=status.HTTP_204_NO_CONTENT)


class TriggerActionView(TenantAPIView):
	"""Enable, disable, or rotate a webhook's secret (``verb`` is set per route)."""

	verb: str = ""

	@extend_schema(
		request=EmptyRequestSerializer,
		responses={200: IssuedTriggerSerializer, **problem_responses(400, 403, 404, 409)},
		tags=["triggers"],
	)
	def post(self, request: Request, trigger_id: str) -> Response:
		_parse(EmptyRequestSerializer, request.data)
		trigger = trigger_get(actor=self.actor, tenant=self.tenant, trigger_id=trigger_id)
		if self.verb == "rotate-secret":
			return Response(_issued(trigger_rotate_secret(actor=self.actor, trigger=trigger)))
		change = trigger_enable if self.verb == "enable" else trigger_disable
		return Response(
			_issued(IssuedTrigger(trigger=change(actor=self.actor, trigger=trigger), secret=None))
		)


class CronPreviewView(TenantAPIView):
	"""The next fire times of a cron expression in a time zone (to check one before saving it)."""

	@extend_schema(
		operation_id="cron_preview",
		parameters=[CronPreviewQuerySerializer],
		responses={200: CronPreviewSerializer, **problem_responses(400)},
		tags=["triggers"],
	)
	def get(self, request: Request) -> Response:
		values = _query(CronPreviewQuerySerializer, request)
		times = cron_preview(
			expression=values["expression"], timezone=values["timezone"], count=values["count"]
		)
		return Response(
			CronPreviewSerializer(
				{
					"expression": values["expression"],
					"timezone": values["timezone"],
					"times": [t.isoformat() for t in times],
				}
			).data
		)
