"""REST endpoints for bulk operations: runs (/api/v1/runs/bulk/: start, cancel, retry, delete)
and events (/api/v1/events/bulk/: publish many).

The request's shape is validated as a whole (a malformed request is a 400 and nothing is
done). Then each item goes through its single-run service in its own transaction, and the
answer is ``200`` with one result per item, in request order: ``index``, ``id``, ``status``
(the HTTP status the single-run endpoint would have answered) and, on failure, ``problem``
(the problem details that endpoint would have answered, JSON pointers made absolute in this
request). Partial success is normal; ``succeeded`` and ``failed`` count the outcomes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from workflows.api.base import TenantAPIView
from workflows.api.errors import problem, problem_exception_handler
from workflows.api.runs import problem_responses
from workflows.api.runs_serializers import (
	EventOutcomeSerializer,
	EventPublishSerializer,
	RunSerializer,
	RunsProblemSerializer,
	StrictSerializer,
)
from workflows.errors import ServiceError
from workflows.services.bulk import (
	BulkItemResult,
	BulkStartItem,
	bulk_limit_check,
	run_bulk_cancel,
	run_bulk_delete,
	run_bulk_retry,
	run_bulk_start,
)
from workflows.services.runs import EventItem, EventOutcome, event_publish_many

__all__ = ["BulkCancelView", "BulkDeleteView", "BulkEventsView", "BulkRetryView", "BulkStartView"]


# --- request and response shapes -----------------------------------------------------------------


class BulkStartItemSerializer(StrictSerializer):
	"""One run to start: which workflow, and the fields of a single start."""

	workflow = serializers.CharField(max_length=200, help_text="A workflow's id or slug.")
	input = serializers.JSONField(required=False, help_text="Checked against the version's input schema.")
	version = serializers.IntegerField(min_value=1, required=False, help_text="Default: the latest.")
	priority = serializers.IntegerField(min_value=0, max_value=9, required=False, help_text="9 runs first.")
	tags = serializers.ListField(
		child=serializers.CharField(min_length=1, max_length=50), required=False, max_length=50
	)


class BulkStartSerializer(StrictSerializer):
	"""Runs to start, each of any workflow (at most API_BULK_MAX_ITEMS)."""

	items = serializers.ListField(child=BulkStartItemSerializer(), allow_empty=True)


class BulkRunIdsSerializer(StrictSerializer):
	"""Runs to act on, by id, each listed once (at most API_BULK_MAX_ITEMS)."""

	run_ids = serializers.ListField(child=serializers.UUIDField(), allow_empty=True)


class BulkCancelSerializer(BulkRunIdsSerializer):
	"""Runs to cancel, with the options of a single cancel applied to each."""

	compensate = serializers.BooleanField(default=False, help_text="Undo each run's completed steps first.")
	reason = serializers.CharField(allow_blank=True, default="", max_length=500)


class BulkItemResultSerializer(serializers.Serializer):
	"""The outcome of one item."""

	index = serializers.IntegerField(help_text="The item's position in the request, from 0.")
	id = serializers.UUIDField(allow_null=True, help_text="The run's id (null when a start failed).")
	status = serializers.IntegerField(help_text="What the single-run endpoint would have answered.")
	run = RunSerializer(allow_null=True, help_text="The run after the action; null on failure and delete.")
	problem = RunsProblemSerializer(allow_null=True, help_text="Why the item failed; null on success.")


class BulkResultSerializer(serializers.Serializer):
	"""One result per item, in request order."""

	succeeded = serializers.IntegerField()
	failed = serializers.IntegerField()
	results = BulkItemResultSerializer(many=True)


class BulkEventsSerializer(StrictSerializer):
	"""Events to publish, each as for a single publish (at most API_BULK_MAX_ITEMS)."""

	events = serializers.ListField(child=EventPublishSerializer(), allow_empty=True)


class BulkEventResultSerializer(serializers.Serializer):
	"""The outcome of one event."""

	index = serializers.IntegerField(help_text="The event's position in the request, from 0.")
	status = serializers.IntegerField(help_text="What the single publish would have answered (202).")
	event = EventOutcomeSerializer(allow_null=True, help_text="Where the event went; null on failure.")
	problem = RunsProblemSerializer(allow_null=True, help_text="Why the event failed; null on success.")


class BulkEventsResultSerializer(serializers.Serializer):
	"""One result per event, in request order."""

	succeeded = serializers.IntegerField()
	failed = serializers.IntegerField()
	results = BulkEventResultSerializer(many=True)


# --- helpers -------------------------------------------------------------------------------------


def _parse(serializer_class: type[serializers.Serializer], request: Request, key: str) -> dict[str, Any]:
	# Count before validating: a request over the limit is refused without checking every item.
	listed = request.data.get(key) if isinstance(request.data, dict) else None
	if isinstance(listed, list):
		bulk_limit_check(count=len(listed), pointer=f"/{key}")
	parsed = serializer_class(data=request.data)
	parsed.is_valid(raise_exception=True)
	return dict(parsed.validated_data)


def _failure(error: Exception, where: str) -> tuple[int, dict[str, Any]]:
	if isinstance(error, ServiceError):
		response = problem_exception_handler(error, {})
		assert response is not None, "service errors always map to a problem"
		body = dict(response.data or {})
		if "errors" in body:
			body["errors"] = [{**e, "pointer": where + e["pointer"]} for e in body["errors"]]
		return response.status_code, body
	return 500, problem(
		status_code=500,
		detail="An unexpected error occurred for this item; it has been logged. Other items were not affected.",
		kind="internal",
	)


def _answer(
	results: Sequence[tuple[int, Exception | None, dict[str, Any]]],
	ok_status: int,
	where: Callable[[int], str],
) -> Response:
	"""The bulk answer from ``(index, error or None, the item's own fields)`` per item, in order."""
	items: list[dict[str, Any]] = []
	for index, error, fields in results:
		item: dict[str, Any] = {"index": index, **fields, "problem": None}
		if error is None:
			item["status"] = ok_status
		else:
			item["status"], item["problem"] = _failure(error, where(index))
		items.append(item)
	failed = sum(1 for item in items if item["problem"] is not None)
	return Response({"succeeded": len(items) - failed, "failed": failed, "results": items})


def _runs_answer(results: list[BulkItemResult], ok_status: int, where: Callable[[int], str]) -> Response:
	return _answer(
		[
			(
				result.index,
				result.error,
				{
					"id": result.run_id,
					"run": RunSerializer(result.run).data if result.ok and result.run is not None else None,
				},
			)
			for result in results
		],
		ok_status,
		where,
	)


_BULK_RESPONSES = {200: BulkResultSerializer, **problem_responses(400)}


# --- views ---------------------------------------------------------------------------------------


class BulkStartView(TenantAPIView):
	"""Start many runs, of one or several workflows; one result per item (201 each when started)."""

	@extend_schema(
		operation_id="runs_bulk_start",
		request=BulkStartSerializer,
		responses=_BULK_RESPONSES,
		tags=["runs"],
	)
	def post(self, request: Request) -> Response:
		values = _parse(BulkStartSerializer, request, "items")
		results = run_bulk_start(
			actor=self.actor,
			tenant=self.tenant,
			items=[BulkStartItem(**item) for item in values["items"]],
		)
		return _runs_answer(results, status.HTTP_201_CREATED, lambda i: f"/items/{i}")


class BulkCancelView(TenantAPIView):
	"""Cancel many runs; one result per run (200 each when cancelled)."""

	@extend_schema(
		operation_id="runs_bulk_cancel",
		request=BulkCancelSerializer,
		responses=_BULK_RESPONSES,
		tags=["runs"],
	)
	def post(self, request: Request) -> Response:
		values = _parse(BulkCancelSerializer, request, "run_ids")
		results = run_bulk_cancel(
			actor=self.actor,
			tenant=self.tenant,
			run_ids=[str(i) for i in values["run_ids"]],
			compensate=values["compensate"],
			reason=values["reason"],
		)
		return _runs_answer(results, status.HTTP_200_OK, lambda i: f"/run_ids/{i}")


class BulkRetryView(TenantAPIView):
	"""Retry many failed runs from their failed steps; one result per run (200 each when retried)."""

	@extend_schema(
		operation_id="runs_bulk_retry",
		request=BulkRunIdsSerializer,
		responses=_BULK_RESPONSES,
		tags=["runs"],
	)
	def post(self, request: Request) -> Response:
		values = _parse(BulkRunIdsSerializer, request, "run_ids")
		results = run_bulk_retry(
			actor=self.actor, tenant=self.tenant, run_ids=[str(i) for i in values["run_ids"]]
		)
		return _runs_answer(results, status.HTTP_200_OK, lambda i: f"/run_ids/{i}")


class BulkDeleteView(TenantAPIView):
	"""Delete many finished runs for good; one result per run (204 each when deleted)."""

	@extend_schema(
		operation_id="runs_bulk_delete",
		request=BulkRunIdsSerializer,
		responses=_BULK_RESPONSES,
		tags=["runs"],
	)
	def post(self, request: Request) -> Response:
		values = _parse(BulkRunIdsSerializer, request, "run_ids")
		results = run_bulk_delete(
			actor=self.actor, tenant=self.tenant, run_ids=[str(i) for i in values["run_ids"]]
		)
		return _runs_answer(results, status.HTTP_204_NO_CONTENT, lambda i: f"/run_ids/{i}")


class BulkEventsView(TenantAPIView):
	"""Publish many events in one transaction; one result per event (202 each when published)."""

	@extend_schema(
		operation_id="events_bulk_publish",
		request=BulkEventsSerializer,
		responses={200: BulkEventsResultSerializer, **problem_responses(400, 403)},
		tags=["events"],
	)
	def post(self, request: Request) -> Response:
		values = _parse(BulkEventsSerializer, request, "events")
		outcomes = event_publish_many(
			actor=self.actor,
			tenant=self.tenant,
			events=[EventItem(**event) for event in values["events"]],
			source="api",
		)
		return _answer(
			[
				(index, None, {"event": EventOutcomeSerializer(outcome).data})
				if isinstance(outcome, EventOutcome)
				else (index, outcome, {"event": None})
				for index, outcome in enumerate(outcomes)
			],
			status.HTTP_202_ACCEPTED,
			lambda i: f"/events/{i}",
		)
