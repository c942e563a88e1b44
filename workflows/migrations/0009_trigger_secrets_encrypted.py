"""Webhook trigger signing secrets are stored encrypted (they were stored as issued)."""

from typing import Any

from django.db import migrations

_PREFIX = "whsec_"


def encrypt_plain_secrets(apps: Any, schema_editor: Any) -> None:
	from workflows.crypto import encrypt

	Trigger = apps.get_model("workflows", "Trigger")
	for trigger in Trigger._base_manager.filter(secret__startswith=_PREFIX).only("pk", "secret"):
		Trigger._base_manager.filter(pk=trigger.pk).update(secret=encrypt(trigger.secret))


class Migration(migrations.Migration):
	dependencies = [
		("workflows", "0008_run_list_indexes"),
	]

	operations = [
		migrations.RunPython(encrypt_plain_secrets, migrations.RunPython.noop),
	]
