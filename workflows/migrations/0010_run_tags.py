"""Run tags in their own table, so the run list filters by tag with an index range read.

The rows are written from the runs' ``tags`` before the indexes are built: on PostgreSQL one
``INSERT ... SELECT`` (a million runs take seconds), on SQLite in batches.
"""

from typing import Any

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

import workflows.models.base

# Also what bench/api_runs_list.py runs after loading its runs. Ids are uuid7 of the run's
# creation time, as the engine would have made them; a tag that is not a string of 1 to 50
# characters never passed validation and is left out.
BACKFILL_SQL = """
INSERT INTO workflows_runtag (id, created_at, updated_at, tenant_id, run_id, tag)
SELECT
	(lpad(to_hex((extract(epoch FROM r.created_at) * 1000)::bigint), 12, '0') || '7'
		|| substr(md5(random()::text), 1, 3) || substr('89ab', 1 + floor(random() * 4)::int, 1)
		|| substr(md5(random()::text), 1, 15))::uuid,
	r.created_at, now(), r.tenant_id, r.id, t.tag
FROM workflows_run r
CROSS JOIN LATERAL (
	SELECT DISTINCT e #>> '{}' AS tag
	FROM jsonb_array_elements(r.tags) AS e
	WHERE jsonb_typeof(e) = 'string' AND length(e #>> '{}') BETWEEN 1 AND 50
) t
WHERE jsonb_typeof(r.tags) = 'array' AND r.tags <> '[]'::jsonb
"""


def _backfill(apps: Any, schema_editor: Any) -> None:
	if schema_editor.connection.vendor == "postgresql":
		schema_editor.execute(BACKFILL_SQL)
		schema_editor.execute("ANALYZE workflows_runtag")
		return
	run_model = apps.get_model("workflows", "Run")
	tag_model = apps.get_model("workflows", "RunTag")
	batch: list[Any] = []
	runs = run_model.objects.using(schema_editor.connection.alias).only(
		"id", "tenant_id", "created_at", "tags"
	)
	for run in runs.iterator(chunk_size=2000):
		if not isinstance(run.tags, list):
			continue
		batch.extend(
			tag_model(tenant_id=run.tenant_id, run_id=run.pk, tag=tag, created_at=run.created_at)
			for tag in dict.fromkeys(run.tags)
			if isinstance(tag, str) and 0 < len(tag) <= 50
		)
		if len(batch) >= 2000:
			tag_model.objects.using(schema_editor.connection.alias).bulk_create(batch)
			batch = []
	tag_model.objects.using(schema_editor.connection.alias).bulk_create(batch)


class Migration(migrations.Migration):
	dependencies = [
		("workflows", "0009_trigger_secrets_encrypted"),
	]

	operations = [
		migrations.CreateModel(
			name="RunTag",
			fields=[
				(
					"id",
					models.UUIDField(
						default=workflows.models.base.uuid7, editable=False, primary_key=True, serialize=False
					),
				),
				("created_at", models.DateTimeField(default=django.utils.timezone.now, editable=False)),
				("updated_at", models.DateTimeField(auto_now=True)),
				("tag", models.CharField(max_length=50)),
				(
					"run",
					models.ForeignKey(
						db_index=False,
						on_delete=django.db.models.deletion.CASCADE,
						related_name="tag_rows",
						to="workflows.run",
					),
				),
				(
					"tenant",
					models.ForeignKey(
						db_index=False,
						on_delete=django.db.models.deletion.CASCADE,
						related_name="+",
						to="workflows.tenant",
					),
				),
			],
		),
		migrations.RunPython(_backfill, migrations.RunPython.noop),
		migrations.AddIndex(
			model_name="runtag",
			index=models.Index(
				fields=["tenant", "tag", "-created_at", "-run"], name="runtag_tenant_tag_recent"
			),
		),
		migrations.AddConstraint(
			model_name="runtag",
			constraint=models.UniqueConstraint(fields=("run", "tag"), name="runtag_unique_run_tag"),
		),
	]
