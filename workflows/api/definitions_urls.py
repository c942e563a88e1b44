"""REST routes of workflows, versions and templates (included under /api/v1/)."""

from django.urls import path

from workflows.api import definitions as views

# ``workflows/import/`` comes before ``workflows/<workflow_id>/``: a workflow whose slug is
# "import" is still reachable by its id.
urlpatterns = [
	path("workflows/", views.WorkflowListView.as_view(), name="api-workflows"),
	path("workflows/import/", views.WorkflowImportView.as_view(), name="api-workflow-import"),
	path("workflows/<str:workflow_id>/", views.WorkflowDetailView.as_view(), name="api-workflow-detail"),
	path(
		"workflows/<str:workflow_id>/validate/",
		views.WorkflowValidateView.as_view(),
		name="api-workflow-validate",
	),
	path(
		"workflows/<str:workflow_id>/publish/",
		views.WorkflowPublishView.as_view(),
		name="api-workflow-publish",
	),
	path(
		"workflows/<str:workflow_id>/archive/",
		views.WorkflowArchiveView.as_view(),
		name="api-workflow-archive",
	),
	path(
		"workflows/<str:workflow_id>/unarchive/",
		views.WorkflowUnarchiveView.as_view(),
		name="api-workflow-unarchive",
	),
	path(
		"workflows/<str:workflow_id>/rollback/",
		views.WorkflowRollbackView.as_view(),
		name="api-workflow-rollback",
	),
	path(
		"workflows/<str:workflow_id>/versions/",
		views.WorkflowVersionListView.as_view(),
		name="api-workflow-versions",
	),
	path(
		"workflows/<str:workflow_id>/versions/<int:number>/",
		views.WorkflowVersionDetailView.as_view(),
		name="api-workflow-version-detail",
	),
	path(
		"workflows/<str:workflow_id>/history/",
		views.WorkflowHistoryView.as_view(),
		name="api-workflow-history",
	),
	path("workflows/<str:workflow_id>/diff/", views.WorkflowDiffView.as_view(), name="api-workflow-diff"),
	path(
		"workflows/<str:workflow_id>/export/", views.WorkflowExportView.as_view(), name="api-workflow-export"
	),
	path(
		"workflows/<str:workflow_id>/publish-template/",
		views.WorkflowTemplatePublishView.as_view(),
		name="api-workflow-publish-template",
	),
	path("templates/", views.TemplateListView.as_view(), name="api-templates"),
	path("templates/<str:template_id>/", views.TemplateDetailView.as_view(), name="api-template-detail"),
	path(
		"templates/<str:template_id>/instantiate/",
		views.TemplateInstantiateView.as_view(),
		name="api-template-instantiate",
	),
	path("definition-schema/", views.DefinitionSchemaView.as_view(), name="api-definition-schema"),
]
