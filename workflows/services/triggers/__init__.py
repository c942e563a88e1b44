"""Triggers: what starts runs without a person pressing Start (see docs/triggers.md).

- :mod:`.manage`: create, change, enable, disable, delete, rotate a webhook secret.
- :mod:`.schedule`: cron expressions in a time zone, DST, previews, missed-fire policies.
- :mod:`.firing`: the cron sweep's step, signed webhooks, event triggers.

Cron triggers are fired by the sweep (:func:`workflows.tasks.fire_due_cron_triggers`), one
locked row at a time; webhook triggers by the public endpoint (:mod:`workflows.triggers_api`);
event triggers after an event is published (the ``apg.start_event_triggers`` task).
"""

from workflows.services.triggers.firing import (
	MAX_WEBHOOK_BODY,
	SIGNATURE_HEADER,
	SIGNATURE_TOLERANCE,
	TIMESTAMP_HEADER,
	cron_trigger_fire,
	event_triggers_schedule,
	event_triggers_start,
	webhook_signature,
	webhook_signature_valid,
	webhook_trigger_find,
	webhook_trigger_fire,
)
from workflows.services.triggers.manage import (
	UNSET,
	IssuedTrigger,
	trigger_create,
	trigger_delete,
	trigger_disable,
	trigger_enable,
	trigger_rotate_secret,
	trigger_update,
)
from workflows.services.triggers.schedule import CRON_MAX_CATCH_UP, CRON_MISFIRE_GRACE, cron_preview

__all__ = [
	"CRON_MAX_CATCH_UP",
	"CRON_MISFIRE_GRACE",
	"MAX_WEBHOOK_BODY",
	"SIGNATURE_HEADER",
	"SIGNATURE_TOLERANCE",
	"TIMESTAMP_HEADER",
	"UNSET",
	"IssuedTrigger",
	"cron_preview",
	"cron_trigger_fire",
	"event_triggers_schedule",
	"event_triggers_start",
	"trigger_create",
	"trigger_delete",
	"trigger_disable",
	"trigger_enable",
	"trigger_rotate_secret",
	"trigger_update",
	"webhook_signature",
	"webhook_signature_valid",
	"webhook_trigger_find",
	"webhook_trigger_fire",
]
