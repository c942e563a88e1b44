from django.apps import AppConfig


class WorkflowsConfig(AppConfig):
	"""Tenancy, RBAC and audit; workflow definitions, versions and the engine."""

	name = "workflows"
	verbose_name = "Workflows"
	default_auto_field = "django.db.models.BigAutoField"

	def ready(self) -> None:
		from workflows import checks  # noqa: F401  (registers system checks)
		from workflows.rows import cache_long_statements

		cache_long_statements()
