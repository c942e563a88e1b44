"""REST routes for runs, steps, approvals, events and triggers (under /api/v1/)."""

from django.urls import URLPattern, path

from workflows.api import runs

urlpatterns: list[URLPattern] = [
	path("workflows/<str:workflow_id>/runs/", runs.RunStartView.as_view(), name="api-run-start"),
	path("runs/", runs.RunListView.as_view(), name="api-runs"),
	path("runs/<uuid:run_id>/", runs.RunDetailView.as_view(), name="api-run-detail"),
	path("runs/<uuid:run_id>/cancel/", runs.RunCancelView.as_view(), name="api-run-cancel"),
	path("runs/<uuid:run_id>/pause/", runs.RunActionView.as_view(verb="pause"), name="api-run-pause"),
	path("runs/<uuid:run_id>/resume/", runs.RunActionView.as_view(verb="resume"), name="api-run-resume"),
	path("runs/<uuid:run_id>/retry/", runs.RunActionView.as_view(verb="retry"), name="api-run-retry"),
	path("runs/<uuid:run_id>/rerun/", runs.RunRerunView.as_view(), name="api-run-rerun"),
	path("runs/<uuid:run_id>/events/", runs.RunEventsView.as_view(), name="api-run-events"),
	path("steps/<uuid:step_id>/", runs.StepDetailView.as_view(), name="api-step-detail"),
	path("approvals/", runs.ApprovalInboxView.as_view(), name="api-approvals"),
	path(
		"approvals/<uuid:approval_id>/approve/",
		runs.ApprovalDecideView.as_view(decision="approved"),
		name="api-approval-approve",
	),
	path(
		"approvals/<uuid:approval_id>/reject/",
		runs.ApprovalDecideView.as_view(decision="rejected"),
		name="api-approval-reject",
	),
	path("events/", runs.EventPublishView.as_view(), name="api-events"),
	path("workflows/<str:workflow_id>/triggers/", runs.TriggerListView.as_view(), name="api-triggers"),
	path("triggers/<uuid:trigger_id>/", runs.TriggerDetailView.as_view(), name="api-trigger-detail"),
	path(
		"triggers/<uuid:trigger_id>/enable/",
		runs.TriggerActionView.as_view(verb="enable"),
		name="api-trigger-enable",
	),
	path(
		"triggers/<uuid:trigger_id>/disable/",
		runs.TriggerActionView.as_view(verb="disable"),
		name="api-trigger-disable",
	),
	path(
		"triggers/<uuid:trigger_id>/rotate-secret/",
		runs.TriggerActionView.as_view(verb="rotate-secret"),
		name="api-trigger-rotate-secret",
	),
	path("cron-preview/", runs.CronPreviewView.as_view(), name="api-cron-preview"),
]
