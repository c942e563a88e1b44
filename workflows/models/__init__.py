"""Models of the workflows app: tenancy and audit now; definitions and the engine join them."""

from workflows.models.audit import AuditEvent, AuditImmutableError
from workflows.models.base import (
	TenantOwnedModel,
	TenantScopedModel,
	TenantScopeError,
	TimestampedModel,
	uuid7,
)
from workflows.models.definitions import (
	VersionImmutableError,
	Workflow,
	WorkflowTemplate,
	WorkflowVersion,
	empty_definition,
)
from workflows.models.engine import (
	Approval,
	Event,
	EventSubscription,
	Run,
	RunEvent,
	RunTag,
	StepRun,
	Timer,
)
from workflows.models.secrets import Secret
from workflows.models.tenancy import ApiToken, Membership, Tenant, User
from workflows.models.triggers import MissedFirePolicy, Trigger, TriggerKind
from workflows.models.webhooks import WebhookDelivery, WebhookSubscription

__all__ = [
	"Secret",
	"Approval",
	"Event",
	"EventSubscription",
	"Run",
	"RunEvent",
	"RunTag",
	"StepRun",
	"Timer",
	"TenantScopedModel",
	"ApiToken",
	"AuditEvent",
	"AuditImmutableError",
	"Membership",
	"Tenant",
	"TenantOwnedModel",
	"TenantScopeError",
	"TimestampedModel",
	"User",
	"VersionImmutableError",
	"Workflow",
	"WorkflowTemplate",
	"WorkflowVersion",
	"empty_definition",
	"uuid7",
	"MissedFirePolicy",
	"Trigger",
	"TriggerKind",
	"WebhookDelivery",
	"WebhookSubscription",
]
