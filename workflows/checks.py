"""System checks (``manage.py check``): configuration and dependency problems, stated plainly."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

__all__ = ["check_configuration", "check_dependencies"]


@checks.register(checks.Tags.security, deploy=False)
def check_configuration(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
	"""Settings that work in development but are unsafe or broken in production."""
	messages: list[checks.CheckMessage] = []
	engine = settings.DATABASES["default"]["ENGINE"]
	production = engine != "django.db.backends.sqlite3"
	if production and settings.EMBEDDED:
		messages.append(
			checks.Warning(
				"DATABASE_URL is set but REDIS_URL is not: the broker and channel layer are in-memory, "
				"so separate worker processes and other web hosts cannot see this process's tasks or events.",
				hint="Set REDIS_URL (redis://HOST:6379/0) for a multi-process deployment.",
				id="apg.W001",
			)
		)
	if production and settings.DEBUG:
		messages.append(
			checks.Warning(
				"DEBUG is on with a production database: stack traces reach clients.",
				hint="Unset DEBUG (or set DEBUG=false) in production.",
				id="apg.W002",
			)
		)
	if not settings.DEBUG and not settings.ALLOWED_HOSTS:
		messages.append(
			checks.Error(
				"ALLOWED_HOSTS is empty, so every request would be refused with 400.",
				hint="Set ALLOWED_HOSTS to the host names the site is served under, comma-separated.",
				id="apg.E001",
			)
		)
	return messages


@checks.register()
def check_dependencies(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
	"""Native libraries the platform needs at run time."""
	messages: list[checks.CheckMessage] = []
	try:
		import jq  # noqa: F401
	except ImportError as exc:  # pragma: no cover - the wheel ships libjq on supported platforms
		messages.append(
			checks.Error(
				f"The jq library cannot be loaded ({exc}); expressions cannot run.",
				hint="Reinstall with `uv sync`; on an unusual platform install libjq and its headers first.",
				id="apg.E002",
			)
		)
	if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
		try:
			import psycopg_pool  # noqa: F401
		except ImportError:  # pragma: no cover - a declared dependency
			messages.append(
				checks.Error(
					"psycopg_pool is missing, so PostgreSQL connections cannot be pooled.",
					hint="Run `uv sync` to install the declared dependencies.",
					id="apg.E003",
				)
			)
	return messages
