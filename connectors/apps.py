from django.apps import AppConfig


class ConnectorsConfig(AppConfig):
	"""The connectors app."""

	name = "connectors"
	verbose_name = "Connectors"
