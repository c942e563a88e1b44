"""Outgoing webhooks (see docs/webhooks.md).

- :mod:`.manage`: create, change, rotate the secret, enable, disable, delete, redeliver, ping.
- :mod:`.outbox`: the engine's outbox: delivery rows written with the run events, sent after
  commit; a per-process cache of each tenant's subscriptions keeps it cheap.

Sending (signing, the HTTP request, retries, auto-disable, the sweeper) is in
:mod:`workflows.webhook_tasks`.
"""

from workflows.services.webhooks.manage import (
	MAX_EVENT_TYPES,
	MAX_SUBSCRIPTIONS,
	UNSET,
	IssuedWebhook,
	webhook_create,
	webhook_delete,
	webhook_disable,
	webhook_enable,
	webhook_ping,
	webhook_redeliver,
	webhook_rotate_secret,
	webhook_update,
)
from workflows.services.webhooks.outbox import (
	MAX_VALUE_BYTES,
	dispatch_deliveries,
	forget_subscriptions,
	record_deliveries,
)

__all__ = [
	"MAX_EVENT_TYPES",
	"MAX_SUBSCRIPTIONS",
	"MAX_VALUE_BYTES",
	"UNSET",
	"IssuedWebhook",
	"dispatch_deliveries",
	"forget_subscriptions",
	"record_deliveries",
	"webhook_create",
	"webhook_delete",
	"webhook_disable",
	"webhook_enable",
	"webhook_ping",
	"webhook_redeliver",
	"webhook_rotate_secret",
	"webhook_update",
]
