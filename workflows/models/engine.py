"""Execution records: runs, steps, their event history, timers, subscriptions, approvals, events.

The database is the source of truth for every run: a waiting run is only rows, so it holds
no worker, and a full restart of every process loses nothing.
"""

from __future__ import annotations

from typing import Any, ClassVar, Never
from uuid import UUID

from django.conf import settings
from django.db import models
from django.utils import timezone

from workflows.engine.status import RunStatus, StepStatus
from workflows.models.base import TenantScopedModel

__all__ = ["Approval", "Event", "EventSubscription", "Run", "RunEvent", "RunTag", "StepRun", "Timer"]


class Run(TenantScopedModel):
	"""One execution of a published workflow version.

	``state`` is the scheduling core's state (see :mod:`workflows.engine.core`); only
	:func:`workflows.engine.runtime.advance` writes it, under a row lock.
	"""

	workflow = models.ForeignKey("workflows.Workflow", on_delete=models.PROTECT, related_name="runs")
	workflow_id: UUID
	version = models.ForeignKey("workflows.WorkflowVersion", on_delete=models.PROTECT, related_name="runs")
	version_id: UUID
	status = models.CharField(
		max_length=24, choices=[(s.value, s.value) for s in RunStatus], default=RunStatus.PENDING
	)
	priority = models.PositiveSmallIntegerField(default=5)
	input = models.JSONField(default=dict, blank=True)
	output = models.JSONField(null=True, blank=True)
	error = models.JSONField(null=True, blank=True)
	state = models.JSONField(null=True, blank=True)
	tags = models.JSONField(default=list, blank=True)
	parent_run = models.ForeignKey(
		"self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
	)
	parent_run_id: UUID | None
	parent_step_key = models.CharField(max_length=500, blank=True)
	trigger_kind = models.CharField(max_length=20, default="manual")
	trigger_ref = models.CharField(max_length=100, blank=True)
	started_by = models.ForeignKey(
		settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
	)
	started_at = models.DateTimeField(null=True, blank=True)
	finished_at = models.DateTimeField(null=True, blank=True)
	last_seq = models.PositiveIntegerField(default=0)

	class Meta:
		indexes: ClassVar = [
			models.Index(fields=["tenant", "-created_at"], name="run_tenant_recent"),
			models.Index(fields=["tenant", "status", "-created_at"], name="run_tenant_status"),
			models.Index(fields=["tenant", "workflow", "-created_at"], name="run_tenant_workflow"),
			# A workflow's runs in one status (status=failed&workflow=...): a page read, however
			# rare the combination (run_tenant_workflow alone reads past the other statuses).
			models.Index(
				fields=["tenant", "workflow", "status", "-created_at"], name="run_tenant_workflow_status"
			),
			# The run list ordered by priority (ordering=-priority).
			models.Index(fields=["tenant", "-priority", "-created_at", "-id"], name="run_tenant_priority"),
			models.Index(
				fields=["-priority", "created_at"],
				condition=models.Q(status="pending"),
				name="run_pending_queue",
			),
		]

	def __str__(self) -> str:
		return f"run {self.pk} ({self.status})"

	@property
	def is_finished(self) -> bool:
		"""Whether the run reached a terminal status."""
		from workflows.engine.status import TERMINAL_RUN_STATUSES

		return RunStatus(self.status) in TERMINAL_RUN_STATUSES


class RunTag(TenantScopedModel):
	"""One tag of one run: the run list's tag filter reads these, not ``Run.tags``.

	``created_at`` is the run's own (copied when the row is written), so the index
	(tenant, tag, created_at, run) holds a tag's runs in the run list's order (newest first,
	the run id breaking ties): a page of any tag, common or rare, is a range of that index
	plus a primary key lookup per run. Written with the run (:meth:`add_for`) and never
	changed, as a run's tags never are; deleting the run deletes them.
	"""

	# The unique (run, tag) and the tag index serve what these two single-column ones would.
	tenant = models.ForeignKey("workflows.Tenant", on_delete=models.CASCADE, related_name="+", db_index=False)
	run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="tag_rows", db_index=False)
	run_id: UUID
	tag = models.CharField(max_length=50)

	class Meta:
		constraints: ClassVar = [models.UniqueConstraint(fields=["run", "tag"], name="runtag_unique_run_tag")]
		indexes: ClassVar = [
			models.Index(fields=["tenant", "tag", "-created_at", "-run"], name="runtag_tenant_tag_recent"),
		]

	def __str__(self) -> str:
		return f"tag {self.tag!r} of run {self.run_id}"

	@classmethod
	def add_for(cls, run: Run) -> None:
		"""Write the rows of a run just created, in its transaction (a repeated tag counts once)."""
		if run.tags:
			cls.objects.for_tenant(run.tenant).bulk_create(
				cls(tenant_id=run.tenant_id, run=run, tag=tag, created_at=run.created_at)
				for tag in dict.fromkeys(run.tags)
			)


class StepRun(TenantScopedModel):
	"""One node activation and attempt: what went in, what came out, who executed it and when.

	``key`` names the activation (``<frame>:<node>``, e.g. ``root:charge`` or
	``root:each[3]:fetch``); a retry is a new row with the next ``attempt``.
	"""

	run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="steps")
	run_id: UUID
	key = models.CharField(max_length=500)
	node_id = models.CharField(max_length=64)
	node_type = models.CharField(max_length=20)
	frame = models.CharField(max_length=500)
	attempt = models.PositiveIntegerField(default=1)
	status = models.CharField(max_length=24, choices=[(s.value, s.value) for s in StepStatus])
	input = models.JSONField(null=True, blank=True)
	output = models.JSONField(null=True, blank=True)
	error = models.JSONField(null=True, blank=True)
	queue = models.CharField(max_length=20, blank=True)
	dispatch = models.JSONField(null=True, blank=True)
	scheduled_at = models.DateTimeField(null=True, blank=True)
	started_at = models.DateTimeField(null=True, blank=True)
	finished_at = models.DateTimeField(null=True, blank=True)
	lease_expires_at = models.DateTimeField(null=True, blank=True)
	worker = models.CharField(max_length=200, blank=True)
	cancel_requested = models.BooleanField(default=False)

	class Meta:
		constraints: ClassVar = [
			models.UniqueConstraint(fields=["run", "key", "attempt"], name="steprun_one_per_attempt"),
		]
		indexes: ClassVar = [
			models.Index(fields=["tenant", "run", "created_at"], name="steprun_tenant_run"),
			models.Index(
				fields=["lease_expires_at"],
				condition=models.Q(status="running"),
				name="steprun_running_lease",
			),
			models.Index(
				fields=["scheduled_at"], condition=models.Q(status="scheduled"), name="steprun_scheduled_age"
			),
		]

	def __str__(self) -> str:
		return f"{self.key}#{self.attempt} ({self.status})"


class RunEvent(TenantScopedModel):
	"""One entry of a run's append-only history, numbered per run from 1."""

	run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events")
	run_id: UUID
	seq = models.PositiveIntegerField()
	type = models.CharField(max_length=64)
	step_key = models.CharField(max_length=500, blank=True)
	data = models.JSONField(default=dict, blank=True)

	class Meta:
		constraints: ClassVar = [models.UniqueConstraint(fields=["run", "seq"], name="runevent_unique_seq")]
		ordering: ClassVar = ["run", "seq"]

	def __str__(self) -> str:
		return f"{self.run_id}#{self.seq} {self.type}"

	def save(self, *args: Any, **kwargs: Any) -> None:
		assert self._state.adding, "run events are append-only"
		super().save(*args, **kwargs)

	def delete(self, *args: Any, **kwargs: Any) -> Never:
		raise AssertionError("run events are append-only")


class Timer(TenantScopedModel):
	"""A point in time a run waits for (a wait node, a retry backoff, a deadline); swept when due."""

	run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="timers")
	run_id: UUID
	key = models.CharField(max_length=500)
	purpose = models.CharField(max_length=32)
	fire_at = models.DateTimeField()

	class Meta:
		indexes: ClassVar = [models.Index(fields=["fire_at"], name="timer_due")]
		constraints: ClassVar = [
			models.UniqueConstraint(fields=["run", "key", "purpose"], name="timer_one_per_purpose"),
		]

	def __str__(self) -> str:
		return f"{self.key} {self.purpose} at {self.fire_at}"


class EventSubscription(TenantScopedModel):
	"""A wait-for-event step waiting for an event of ``event_type`` with ``correlation``."""

	run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="subscriptions")
	run_id: UUID
	key = models.CharField(max_length=500)
	event_type = models.CharField(max_length=200)
	correlation = models.CharField(max_length=500)

	class Meta:
		indexes: ClassVar = [
			models.Index(fields=["tenant", "event_type", "correlation"], name="subscription_match"),
		]
		constraints: ClassVar = [
			models.UniqueConstraint(fields=["run", "key"], name="subscription_one_per_step")
		]

	def __str__(self) -> str:
		return f"{self.event_type}={self.correlation} -> {self.key}"


class Event(TenantScopedModel):
	"""A published event, kept so a wait that starts a little later still receives it.

	Retention policy (documented in docs/engine.md): an event is delivered to every run
	waiting for it when published; an event nobody waited for is kept for
	``EVENT_RETENTION_SECONDS`` and handed to the first matching wait that starts in that
	window, then deleted by the sweeper.
	"""

	type = models.CharField(max_length=200)
	correlation = models.CharField(max_length=500, blank=True)
	payload = models.JSONField(default=dict, blank=True)
	delivered = models.PositiveIntegerField(default=0)
	consumed_at = models.DateTimeField(null=True, blank=True)
	source = models.CharField(max_length=100, blank=True)

	class Meta:
		indexes: ClassVar = [
			models.Index(
				fields=["tenant", "type", "correlation", "created_at"],
				condition=models.Q(consumed_at__isnull=True),
				name="event_unconsumed",
			),
		]

	def __str__(self) -> str:
		return f"{self.type}={self.correlation}"


class Approval(TenantScopedModel):
	"""A human task opened by an approval step."""

	class Status(models.TextChoices):
		OPEN = "open"
		APPROVED = "approved"
		REJECTED = "rejected"
		TIMED_OUT = "timed_out"
		CANCELLED = "cancelled"

	run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="approvals")
	run_id: UUID
	key = models.CharField(max_length=500)
	node_id = models.CharField(max_length=64)
	title = models.CharField(max_length=200)
	instructions = models.JSONField(null=True, blank=True)
	assignees = models.JSONField(default=list, blank=True)
	role = models.CharField(max_length=16, blank=True)
	form_schema = models.JSONField(default=dict, blank=True)
	deadline_at = models.DateTimeField(null=True, blank=True)
	status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
	decided_by = models.ForeignKey(
		settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
	)
	decided_at = models.DateTimeField(null=True, blank=True)
	comment = models.TextField(blank=True)
	data = models.JSONField(null=True, blank=True)
	escalated_at = models.DateTimeField(null=True, blank=True)

	class Meta:
		indexes: ClassVar = [models.Index(fields=["tenant", "status", "-created_at"], name="approval_inbox")]
		constraints: ClassVar = [models.UniqueConstraint(fields=["run", "key"], name="approval_one_per_step")]

	def __str__(self) -> str:
		return f"{self.title} ({self.status})"

	@property
	def is_open(self) -> bool:
		"""Whether someone can still decide it."""
		return self.status == self.Status.OPEN and (
			self.deadline_at is None or self.deadline_at > timezone.now()
		)
