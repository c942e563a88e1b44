"""REST endpoints of workflows, their versions and draft history, and templates.

Each view parses input, resolves the objects, calls one service or selector and shapes the
output; permissions are checked by the services. ``PATCH`` on a workflow is conditional on
``If-Match`` (the ETag is the draft revision): a stale write is refused with 412 instead of
overwriting someone else's work.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.pagination import CursorPagination
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from workflows.api.base import TenantAPIView
from workflows.api.definitions_serializers import (
	DiffQuerySerializer,
	DraftHistoryEntrySerializer,
	ExportQuerySerializer,
	ProblemSerializer,
	PublishSerializer,
	RollbackSerializer,
	TemplateDetailSerializer,
	TemplateInstantiateSerializer,
	TemplateListQuerySerializer,
	TemplatePublishSerializer,
	TemplateSerializer,
	ValidateSerializer,
	ValidationReportSerializer,
	VersionDetailSerializer,
	VersionSerializer,
	WorkflowCreateSerializer,
	WorkflowDetailSerializer,
	WorkflowImportSerializer,
	WorkflowListQuerySerializer,
	WorkflowSerializer,
	WorkflowUpdateSerializer,
)
from workflows.dsl import LIMITS, definition_json_schema
from workflows.errors import Conflict
from workflows.models import Workflow
from workflows.roles import Perm
from workflows.selectors.definitions import (
	template_get,
	template_list,
	workflow_diff,
	workflow_draft_history,
	workflow_get,
	workflow_list,
	workflow_version_get,
	workflow_version_list,
)
from workflows.services.definitions import (
	template_instantiate,
	template_publish,
	workflow_archive,
	workflow_create,
	workflow_export,
	workflow_import,
	workflow_publish,
	workflow_rollback,
	workflow_unarchive,
	workflow_update,
	workflow_validate,
)
from workflows.services.tenancy import object_soft_delete

__all__ = [
	"DefinitionSchemaView",
	"PreconditionFailed",
	"TemplateDetailView",
	"TemplateInstantiateView",
	"TemplateListView",
	"WorkflowArchiveView",
	"WorkflowDetailView",
	"WorkflowDiffView",
	"WorkflowExportView",
	"WorkflowHistoryView",
	"WorkflowImportView",
	"WorkflowListView",
	"WorkflowPublishView",
	"WorkflowRollbackView",
	"WorkflowTemplatePublishView",
	"WorkflowUnarchiveView",
	"WorkflowValidateView",
	"WorkflowVersionDetailView",
	"WorkflowVersionListView",
]

_WORKFLOWS = ["workflows"]
_TEMPLATES = ["templates"]
_PROBLEM_TYPE = "application/problem+json"
_PROBLEM_TEXT = {
	400: "The request is invalid; `errors` lists each problem with a JSON pointer.",
	401: "Not authenticated.",
	403: "Your role does not allow this.",
	404: "Not found, or in another organization.",
	409: "The action does not fit the object's current state.",
	412: "The workflow changed since you read it (If-Match); reload it and apply your change again.",
}


class PreconditionFailed(exceptions.APIException):
	"""412: the ``If-Match`` revision is not the current one."""

	status_code = status.HTTP_412_PRECONDITION_FAILED
	default_detail = "The workflow changed since you read it; reload it and apply your change again."
	default_code = "precondition_failed"


def _problems(*codes: int) -> dict[Any, Any]:
	"""Problem-details responses for the OpenAPI schema (401 and 404 apply everywhere)."""
	return {
		(code, _PROBLEM_TYPE): OpenApiResponse(ProblemSerializer, description=_PROBLEM_TEXT[code])
		for code in sorted({401, 404, *codes})
	}


def _page_of(name: str, item: type[serializers.Serializer]) -> serializers.Serializer:
	return inline_serializer(
		name,
		fields={
			"next": serializers.URLField(allow_null=True),
			"previous": serializers.URLField(allow_null=True),
			"results": item(many=True),
		},
	)


def _parse(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
	parsed = serializer_class(data=data)
	parsed.is_valid(raise_exception=True)
	return dict(parsed.validated_data)


def _query(request: Request, serializer_class: type[serializers.Serializer]) -> dict[str, Any]:
	return _parse(serializer_class, request.query_params.dict())


class _Cursor(CursorPagination):
	page_size = 50
	max_page_size = 500
	page_size_query_param = "limit"

	def __init__(self, *ordering: str) -> None:
		self.ordering = ordering


_LIMIT = OpenApiParameter("limit", int, description="Page size (1 to 500, default 50).")
_CURSOR = OpenApiParameter("cursor", str, description="The `next` or `previous` link's cursor.")


def _etag(workflow: Workflow) -> str:
	return f'"{workflow.draft_revision}"'


def _with_etag(workflow: Workflow, *, status_code: int = status.HTTP_200_OK) -> Response:
	return Response(
		WorkflowDetailSerializer(workflow).data, status=status_code, headers={"ETag": _etag(workflow)}
	)


_IF_MATCH = re.compile(r'^\s*(?:W/)?"?(\d+)"?\s*$')


def _if_match(request: Request) -> int | None:
	"""The revision in ``If-Match``; None when absent or ``*``."""
	header = request.headers.get("If-Match")
	if header is None or header.strip() == "*":
		return None
	match = _IF_MATCH.match(header)
	if match is None:
		raise exceptions.ValidationError(
			{"If-Match": ['Send the ETag of the workflow as read, e.g. If-Match: "3".']}
		)
	return int(match.group(1))


# --- Workflows --------------------------------------------------------------------------


class WorkflowListView(TenantAPIView):
	"""The organization's workflows; create one."""

	@extend_schema(
		operation_id="workflows_list",
		parameters=[WorkflowListQuerySerializer],
		responses={200: _page_of("PaginatedWorkflowList", WorkflowSerializer), **_problems(400)},
		tags=_WORKFLOWS,
	)
	def get(self, request: Request) -> Response:
		query = _query(request, WorkflowListQuerySerializer)
		workflows = workflow_list(
			actor=self.actor,
			tenant=self.tenant,
			include_archived=query["include_archived"],
			tag=query.get("tag"),
			search=query.get("search"),
		)
		paginator = _Cursor(*(("name", "id") if query["ordering"] == "name" else ("-updated_at", "-id")))
		page = paginator.paginate_queryset(workflows, request, view=self)
		return paginator.get_paginated_response(WorkflowSerializer(page, many=True).data)

	@extend_schema(
		operation_id="workflows_create",
		request=WorkflowCreateSerializer,
		responses={201: WorkflowDetailSerializer, **_problems(400, 403, 409)},
		tags=_WORKFLOWS,
	)
	def post(self, request: Request) -> Response:
		values = _parse(WorkflowCreateSerializer, request.data)
		workflow = workflow_create(actor=self.actor, tenant=self.tenant, **values)
		return _with_etag(workflow, status_code=status.HTTP_201_CREATED)


class WorkflowDetailView(TenantAPIView):
	"""One workflow (by id or slug) with its draft; edit it (If-Match) or delete it."""

	@extend_schema(
		operation_id="workflows_retrieve",
		responses={
			200: OpenApiResponse(WorkflowDetailSerializer, description="ETag: the draft revision."),
			**_problems(),
		},
		tags=_WORKFLOWS,
	)
	def get(self, request: Request, workflow_id: str) -> Response:
		return _with_etag(workflow_get(actor=self.actor, tenant=self.tenant, workflow_id=workflow_id))

	@extend_schema(
		operation_id="workflows_partial_update",
		parameters=[
			OpenApiParameter(
				"If-Match",
				str,
				location=OpenApiParameter.HEADER,
				description='The ETag you read, e.g. "3"; a stale one gets 412.',
			)
		],
		request=WorkflowUpdateSerializer,
		responses={200: WorkflowDetailSerializer, **_problems(400, 403, 409, 412)},
		tags=_WORKFLOWS,
	)
	def patch(self, request: Request, workflow_id: str) -> Response:
		workflow = workflow_get(actor=self.actor, tenant=self.tenant, workflow_id=workflow_id)
		values = _parse(WorkflowUpdateSerializer, request.data)
		if_revision = _if_match(request)
		try:
			workflow = workflow_update(actor=self.actor, workflow=workflow, if_revision=if_revision, **values)
		except Conflict:
			# The service re-read the row under lock into ``workflow``: a revision other than
			# the client's means the Conflict was the stale If-Match, which HTTP calls 412.
			if if_revision is not None and workflow.draft_revision != if_revision:
				raise PreconditionFailed(
					f'The workflow changed since you read it (ETag "{if_revision}", now '
					f'"{workflow.draft_revision}"); reload it and apply your change again.'
				) from None
			raise
		return _with_etag(workflow)

	@extend_schema(operation_id="workflows_destroy", responses={204: None, **_problems(403)}, tags=_WORKFLOWS)
	def delete(self, request: Request, workflow_id: str) -> Response:
		workflow = workflow_get(actor=self.actor, tenant=self.tenant, workflow_id=workflow_id)
		object_soft_delete(actor=self.actor, obj=workflow, perm=Perm.WORKFLOW_DELETE)
		return Response(status=status.HTTP_204_NO_CONTENT)


class WorkflowValidateView(TenantAPIView):
	"""Validate a definition (the draft when none is sent) against this organization."""

	@extend_schema(
		request=ValidateSerializer,
		responses={200: ValidationReportSerializer, **_problems(400)},
		tags=_WORKFLOWS,
	)
	def post(self, request: Request, workflow_id: str) -> Response:
		workflow = workflow_get(actor=self.actor, tenant=self.tenant, workflow_id=workflow_id)
		values = _parse(ValidateSerializer, request.data)
		definition = values.get("definition", workflow.draft)
		result = workflow_validate(actor=self.actor, tenant=self.tenant, definition=definition)
		return Response(result.to_dict())


class WorkflowPublishView(TenantAPIView):
	"""Publish the draft as the next version (200 and the latest version when nothing changed)."""

	@extend_schema(
		request=PublishSerializer,
		responses={
			201: VersionDetailSerializer,
			200: OpenApiResponse(VersionDetailSerializer, description="Identical to the latest version."),
			**_problems(400, 403, 409),
		},
		tags=_WORKFLOWS,
	)
	def post(self, request: Request, workflow_id: str) -> Response:
		workflow = workflow_get(actor=self.actor, tenant=self.tenant, workflow_id=workflow_id)
		values = _parse(PublishSerializer, request.data)
		outcome = workflow_publish(actor=self.actor, workflow=workflow, changelog=values["changelog"])
		return Response(
			VersionDetailSerializer(outcome.version).data,
			status=status.HTTP_201_CREATED if outcome.created else status.HTTP_200_OK,
		)


class WorkflowArchiveView(TenantAPIView):
	"""Archive: hidden from default lists, read-only, starts no new runs."""

	@extend_schema(request=None, responses={200: WorkflowDetailSerializer, **_problems(403)}, tags=_WORKFLOWS)
	def post(self, request: Request, workflow_id: str) -> Response:
		workflow = workflow_get(actor=self.actor, tenant=self.tenant, workflow_id=workflow_id)
		return _with_etag(workflow_archive(actor=self.actor, workflow=workflow))


class WorkflowUnarchiveView(TenantAPIView):
	"""Bring an archived workflow back."""

	@extend_schema(request=None, responses={200: WorkflowDetailSerializer, **_problems(403)}, tags=_WORKFLOWS)
	def post(self, request: Request, workflow_id: str) -> Response:
		workflow = workflow_get(actor=self.actor, tenant=self.tenant, workflow_id=workflow_id)
		return _with_etag(workflow_unarchive(actor=self.actor, workflow=workflow))


class WorkflowRollbackView(TenantAPIView):
	"""Make the draft equal to a published version (the draft history keeps the old draft)."""

	@extend_schema(
		request=RollbackSerializer,
		responses={200: WorkflowDetailSerializer, **_problems(400, 403, 409)},
		tags=_WORKFLOWS,
	)
	def post(self, request: Request, workflow_id: str) -> Response:
		workflow = workflow_get(actor=self.actor, tenant=self.tenant, workflow_id=workflow_id)
		values = _parse(RollbackSerializer, request.data)
		return _with_etag(
			workflow_rollback(actor=self.actor, workflow=workflow, version_number=values["version"])
		)


# --- Versions, history, diff ------------------------------------------------------------


class WorkflowVersionListView(TenantAPIView):
	"""Published versions, newest first."""

	@extend_schema(
		operation_id="workflows_versions_list",
		parameters=[_LIMIT, _CURSOR],
		responses={200: _page_of("PaginatedVersionList", VersionSerializer), **_problems()},
		tags=_WORKFLOWS,
	)
	def get(self, request: Request, workflow_id: str) -> Response:
		workflow = workflow_get(actor=self.actor, tenant=self.tenant, workflow_id=workflow_id)
		paginator = _Cursor("-number")
		page = paginator.paginate_queryset(
			workflow_version_list(actor=self.actor, workflow=workflow), request, view=self
		)
		return paginator.get_paginated_response(VersionSerializer(page, many=True).data)


class WorkflowVersionDetailView(TenantAPIView):
	"""One published version with its definition and checksum."""

	@extend_schema(responses={200: VersionDetailSerializer, **_problems()}, tags=_WORKFLOWS)
	def get(self, request: Request, workflow_id: str, number: int) -> Response:
		workflow = workflow_get(actor=self.actor, tenant=self.tenant, workflow_id=workflow_id)
		version = workflow_version_get(actor=self.actor, workflow=workflow, number=number)
		return Response(VersionDetailSerializer(version).data)


class WorkflowHistoryView(TenantAPIView):
	"""Earlier states of the draft, newest first: when, by whom and why each was saved."""

	@extend_schema(
		operation_id="workflows_history_list",
		parameters=[_LIMIT, _CURSOR],
		responses={200: _page_of("PaginatedDraftHistoryList", DraftHistoryEntrySerializer), **_problems()},
		tags=_WORKFLOWS,
	)
	def get(self, request: Request, workflow_id: str) -> Response:
		workflow = workflow_get(actor=self.actor, tenant=self.tenant, workflow_id=workflow_id)
		paginator = _Cursor("-history_date")
		page = paginator.paginate_queryset(
			workflow_draft_history(actor=self.actor, workflow=workflow), request, view=self
		)
		return paginator.get_paginated_response(DraftHistoryEntrySerializer(page, many=True).data)


_DiffSerializer = inline_serializer(
	"DefinitionDiff",
	fields={
		"is_empty": serializers.BooleanField(),
		"nodes": serializers.DictField(child=serializers.ListField(child=serializers.DictField())),
		"edges": serializers.DictField(child=serializers.ListField(child=serializers.DictField())),
		"fields": serializers.ListField(child=serializers.DictField()),
	},
)


class WorkflowDiffView(TenantAPIView):
	"""Structural diff between the draft, a version (``v3``) or a draft history entry (``history:<id>``)."""

	@extend_schema(
		parameters=[DiffQuerySerializer], responses={200: _DiffSerializer, **_problems(400)}, tags=_WORKFLOWS
	)
	def get(self, request: Request, workflow_id: str) -> Response:
		workflow = workflow_get(actor=self.actor, tenant=self.tenant, workflow_id=workflow_id)
		query = _query(request, DiffQuerySerializer)
		diff = workflow_diff(actor=self.actor, workflow=workflow, base=query["base"], head=query["head"])
		return Response(diff.to_dict())


# --- Import and export ------------------------------------------------------------------


class _IgnoreFormatQuery(DefaultContentNegotiation):
	"""Errors render as JSON whatever ``?format=`` says: here it names the export format."""

	def select_renderer(
		self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
	) -> tuple[BaseRenderer, str]:
		renderer = next(iter(renderers))
		return renderer, renderer.media_type


_MEDIA_TYPE = {"json": "application/json", "yaml": "application/yaml"}


class WorkflowExportView(TenantAPIView):
	"""The workflow (metadata and the draft, or a version) as a JSON or YAML file."""

	renderer_classes = [JSONRenderer]
	content_negotiation_class = _IgnoreFormatQuery

	@extend_schema(
		parameters=[ExportQuerySerializer],
		responses={
			(200, "application/json"): OpenApiResponse(
				OpenApiTypes.OBJECT, description="An export document."
			),
			(200, "application/yaml"): OpenApiResponse(
				OpenApiTypes.OBJECT, description="The same export document, as YAML."
			),
			**_problems(400),
		},
		tags=_WORKFLOWS,
	)
	def get(self, request: Request, workflow_id: str) -> HttpResponse:
		workflow = workflow_get(actor=self.actor, tenant=self.tenant, workflow_id=workflow_id)
		query = _query(request, ExportQuerySerializer)
		text = workflow_export(
			actor=self.actor, workflow=workflow, format=query["format"], version=query.get("version")
		)
		response = HttpResponse(text, content_type=f"{_MEDIA_TYPE[query['format']]}; charset=utf-8")
		response["Content-Disposition"] = f'attachment; filename="{workflow.slug}.{query["format"]}"'
		return response


class WorkflowImportView(TenantAPIView):
	"""Create a workflow from an exported document (JSON or YAML)."""

	@extend_schema(
		request=WorkflowImportSerializer,
		responses={201: WorkflowDetailSerializer, **_problems(400, 403, 409)},
		tags=_WORKFLOWS,
	)
	def post(self, request: Request) -> Response:
		values = _parse(WorkflowImportSerializer, request.data)
		workflow = workflow_import(
			actor=self.actor,
			tenant=self.tenant,
			text=values["document"],
			format=values.get("format"),
			slug=values.get("slug"),
			name=values.get("name"),
		)
		return _with_etag(workflow, status_code=status.HTTP_201_CREATED)


# --- Templates --------------------------------------------------------------------------


class TemplateListView(TenantAPIView):
	"""Shipped templates and the organization's own."""

	@extend_schema(
		operation_id="templates_list",
		parameters=[TemplateListQuerySerializer],
		responses={200: _page_of("PaginatedTemplateList", TemplateSerializer), **_problems(400)},
		tags=_TEMPLATES,
	)
	def get(self, request: Request) -> Response:
		query = _query(request, TemplateListQuerySerializer)
		templates = template_list(
			actor=self.actor,
			tenant=self.tenant,
			category=query.get("category"),
			industry=query.get("industry"),
			tag=query.get("tag"),
			search=query.get("search"),
		)
		paginator = _Cursor("name", "id")
		page = paginator.paginate_queryset(templates, request, view=self)
		return paginator.get_paginated_response(TemplateSerializer(page, many=True).data)


class TemplateDetailView(TenantAPIView):
	"""One template (by id or slug) with its definition."""

	@extend_schema(
		operation_id="templates_retrieve",
		responses={200: TemplateDetailSerializer, **_problems()},
		tags=_TEMPLATES,
	)
	def get(self, request: Request, template_id: str) -> Response:
		template = template_get(actor=self.actor, tenant=self.tenant, template_id=template_id)
		return Response(TemplateDetailSerializer(template).data)


class TemplateInstantiateView(TenantAPIView):
	"""Create a workflow whose draft is a copy of the template's definition."""

	@extend_schema(
		request=TemplateInstantiateSerializer,
		responses={201: WorkflowDetailSerializer, **_problems(400, 403, 409)},
		tags=_TEMPLATES,
	)
	def post(self, request: Request, template_id: str) -> Response:
		template = template_get(actor=self.actor, tenant=self.tenant, template_id=template_id)
		values = _parse(TemplateInstantiateSerializer, request.data)
		workflow = template_instantiate(actor=self.actor, tenant=self.tenant, template=template, **values)
		return _with_etag(workflow, status_code=status.HTTP_201_CREATED)


class WorkflowTemplatePublishView(TenantAPIView):
	"""Publish the workflow's latest version as an organization template (admins)."""

	@extend_schema(
		request=TemplatePublishSerializer,
		responses={
			201: TemplateDetailSerializer,
			200: OpenApiResponse(
				TemplateDetailSerializer, description="An existing template, now a new version."
			),
			**_problems(400, 403, 409),
		},
		tags=_TEMPLATES,
	)
	def post(self, request: Request, workflow_id: str) -> Response:
		workflow = workflow_get(actor=self.actor, tenant=self.tenant, workflow_id=workflow_id)
		values = _parse(TemplatePublishSerializer, request.data)
		template = template_publish(actor=self.actor, workflow=workflow, **values)
		return Response(
			TemplateDetailSerializer(template).data,
			status=status.HTTP_201_CREATED if template.version == 1 else status.HTTP_200_OK,
		)


# --- Definition schema ------------------------------------------------------------------


class DefinitionSchemaView(TenantAPIView):
	"""The JSON Schema of a definition document and the size limits, for editors and tools."""

	@extend_schema(
		responses={
			200: inline_serializer(
				"DefinitionSchema",
				fields={
					"schema": serializers.DictField(help_text="JSON Schema, draft 2020-12."),
					"limits": serializers.DictField(child=serializers.IntegerField()),
				},
			),
			**_problems(),
		},
		tags=_WORKFLOWS,
	)
	def get(self, request: Request) -> Response:
		return Response({"schema": definition_json_schema(), "limits": LIMITS.as_dict()})
