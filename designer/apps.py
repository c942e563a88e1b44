from django.apps import AppConfig


class DesignerConfig(AppConfig):
	"""The designer app."""

	name = "designer"
	verbose_name = "Designer"
