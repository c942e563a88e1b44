"""Logging: structured JSON lines in production, readable lines in development.

Every record carries the request id, tenant, run and step ids bound in the current
context (see :mod:`workflows.context`), so one request or one run can be followed across
web and worker processes.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_logging"]

_CONTEXT_FIELDS = "request_id tenant_id run_id step_id"


def build_logging(*, level: str, json_lines: bool) -> dict[str, Any]:
	"""Return a ``LOGGING`` dict for :func:`logging.config.dictConfig`."""
	formatter = (
		{
			"()": "pythonjsonlogger.json.JsonFormatter",
			"fmt": f"%(asctime)s %(levelname)s %(name)s %(message)s {_CONTEXT_FIELDS}",
			"rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
		}
		if json_lines
		else {
			"format": "%(asctime)s %(levelname)-7s %(name)s [req=%(request_id)s tenant=%(tenant_id)s"
			" run=%(run_id)s step=%(step_id)s] %(message)s",
		}
	)
	return {
		"version": 1,
		"disable_existing_loggers": False,
		"filters": {"context": {"()": "workflows.context.ContextLogFilter"}},
		"formatters": {"default": formatter},
		"handlers": {
			"console": {
				"class": "logging.StreamHandler",
				"formatter": "default",
				"filters": ["context"],
			}
		},
		"root": {"handlers": ["console"], "level": level},
		"loggers": {
			"django.db.backends": {"level": "INFO"},
			"daphne": {"level": "WARNING"},
			"celery": {"level": "WARNING"},
			"kombu": {"level": "WARNING"},
		},
	}
