"""Project configuration: settings, URLs, ASGI routing and the Celery app.

The Celery app is imported here so that every process (web, manage.py commands, scripts)
sends tasks through it, with the configured broker, not through Celery's default app.
"""

from config.celery import app as celery_app

__all__ = ["celery_app"]
