"""Indexes for listing runs: by priority, and by tag on PostgreSQL (found by bench/api_runs_list.py)."""

from typing import Any

from django.db import migrations, models

# Run.tags is a JSON list; the list's tag filter is a containment test (tags @> '["x"]') on
# PostgreSQL, which this index serves. SQLite has no GIN index and filters without one.
_TAGS_GIN = "CREATE INDEX IF NOT EXISTS run_tags_gin ON workflows_run USING gin (tags jsonb_path_ops)"
_DROP_TAGS_GIN = "DROP INDEX IF EXISTS run_tags_gin"


def _on_postgresql(sql: str) -> Any:
	def run(apps: Any, schema_editor: Any) -> None:
		if schema_editor.connection.vendor == "postgresql":
			schema_editor.execute(sql)

	return run


class Migration(migrations.Migration):
	dependencies = [
		("workflows", "0007_webhooks"),
	]

	operations = [
		migrations.AddIndex(
			model_name="run",
			index=models.Index(
				fields=["tenant", "-priority", "-created_at", "-id"], name="run_tenant_priority"
			),
		),
		migrations.RunPython(_on_postgresql(_TAGS_GIN), _on_postgresql(_DROP_TAGS_GIN)),
	]
