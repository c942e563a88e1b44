from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
	"""The analytics app."""

	name = "analytics"
	verbose_name = "Analytics"
