"""Project configuration: settings, URLs, ASGI routing and the Celery app."""
