"""On PostgreSQL, refuse UPDATE and DELETE of audit rows in the database itself.

The model and queryset already refuse both; the trigger also stops raw SQL and any code
path that bypasses the ORM. SQLite (the embedded default) relies on the ORM guards.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION apg_audit_append_only() RETURNS trigger AS $$
BEGIN
	RAISE EXCEPTION 'audit events are append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER workflows_auditevent_append_only
	BEFORE UPDATE OR DELETE ON workflows_auditevent
	FOR EACH ROW EXECUTE FUNCTION apg_audit_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS workflows_auditevent_append_only ON workflows_auditevent;
DROP FUNCTION IF EXISTS apg_audit_append_only();
"""


def _create(apps, schema_editor):
	if schema_editor.connection.vendor == "postgresql":
		schema_editor.execute(CREATE, params=None)


def _drop(apps, schema_editor):
	if schema_editor.connection.vendor == "postgresql":
		schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
	dependencies = [("workflows", "0001_initial")]

	operations = [migrations.RunPython(_create, _drop)]
