"""Benchmarks of the engine against PostgreSQL, Redis and real Celery worker processes.

Each script is one command, ``uv run python bench/<name>.py``, and prints its figure (and the
ratio against a baseline measured in the same run, where there is one) as its last line.
See docs/performance.md.
"""
