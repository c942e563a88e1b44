"""Creating runs and admitting them under concurrency limits (per workflow and per tenant).

Excess runs wait as ``pending`` and are admitted first by priority (9 first), then first
come first served, whenever a run of the tenant finishes.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from django.conf import settings
from django.db import transaction

from workflows.engine.core import Start
from workflows.engine.runtime import advance, engine_for
from workflows.engine.status import ACTIVE_RUN_STATUSES, RunStatus
from workflows.models import Run, RunTag, Tenant, User, Workflow, WorkflowVersion
from workflows.services.secrets import secret_names

__all__ = ["admit_pending", "create_run", "start_if_admitted"]

logger = logging.getLogger("apg.engine")
_ACTIVE = [s.value for s in ACTIVE_RUN_STATUSES]


def create_run(
	*,
	tenant: Tenant,
	workflow: Workflow,
	version: WorkflowVersion,
	input: Any,
	priority: int | None = None,
	tags: list[str] | None = None,
	actor: User | None = None,
	trigger_kind: str = "manual",
	trigger_ref: str = "",
	parent: tuple[Run, str] | None = None,
) -> Run:
	"""Create a pending run pinned to ``version``. Call :func:`start_if_admitted` to start it."""
	assert version.workflow_id == workflow.pk, "the version must belong to the workflow"
	defaults = engine_for(version).definition.defaults
	run = Run.objects._unfiltered().create(
		tenant=tenant,
		workflow=workflow,
		version=version,
		status=RunStatus.PENDING,
		priority=defaults.priority if priority is None else priority,
		input=input,
		tags=tags or [],
		started_by=actor,
		trigger_kind=trigger_kind,
		trigger_ref=trigger_ref,
		parent_run=parent[0] if parent else None,
		parent_step_key=parent[1] if parent else "",
	)
	RunTag.add_for(run)
	return run


def _limits(run: Run) -> tuple[int | None, int | None]:
	workflow_limit = engine_for(run.version_id).definition.defaults.concurrency_limit
	return workflow_limit, settings.TENANT_CONCURRENCY_LIMIT


def _has_room(run: Run, workflow_limit: int | None, tenant_limit: int | None) -> bool:
	active = Run.objects._unfiltered().filter(tenant_id=run.tenant_id, status__in=_ACTIVE)
	if tenant_limit is not None and active.count() >= tenant_limit:
		return False
	return workflow_limit is None or active.filter(workflow_id=run.workflow_id).count() < workflow_limit


def _start(run: Run, *, created: bool = False) -> None:
	advance(
		run.pk,
		Start(
			input=run.input,
			meta={
				"id": str(run.pk),
				"run_id": str(run.pk),
				"workflow": run.workflow.slug,
				"workflow_id": str(run.workflow_id),
				"version": run.version.number,
				"tenant": run.tenant.slug,
				"started_at": run.created_at.isoformat(),
				"trigger": run.trigger_kind,
				"parent_run_id": str(run.parent_run_id) if run.parent_run_id else None,
				# Names only: expressions see secret://NAME markers, resolved when a step executes.
				# Names the definition uses but the tenant lacks become markers too, so the step
				# fails saying which secret is missing instead of sending an empty credential.
				"secret_names": sorted(set(secret_names(run.tenant_id)) | _referenced_secrets(run.version)),
			},
		),
		created=run if created else None,
	)


_SECRET_REF = re.compile(r"secrets\.([A-Za-z_][A-Za-z0-9_]*)")


def _referenced_secrets(version: WorkflowVersion) -> frozenset[str]:
	"""The secret names a published version's definition mentions (versions never change)."""
	found = _SECRETS_BY_VERSION.get(version.pk)
	if found is None:
		found = frozenset(_SECRET_REF.findall(json.dumps(version.definition)))
		if len(_SECRETS_BY_VERSION) >= 1024:
			_SECRETS_BY_VERSION.clear()
		_SECRETS_BY_VERSION[version.pk] = found
	return found


_SECRETS_BY_VERSION: dict[Any, frozenset[str]] = {}


def start_if_admitted(run: Run, *, created: bool = False) -> bool:
	"""Start ``run`` now if the limits allow it (else it stays pending, queued); True when started.

	``created``: the run was inserted in the current transaction, so starting it needs no
	lock and ``run`` itself is brought up to date (no need to read it back).
	"""
	workflow_limit, tenant_limit = _limits(run)
	# No savepoint: a failure here fails the caller's transaction anyway.
	with transaction.atomic(savepoint=False):
		if workflow_limit is not None or tenant_limit is not None:
			# Admission decisions of one tenant are serialised on its row, so two starts
			# cannot both take the last slot.
			Tenant.objects.select_for_update().filter(pk=run.tenant_id).first()
			earlier = (
				Run.objects._unfiltered()
				.filter(
					tenant_id=run.tenant_id,
					status=RunStatus.PENDING,
					created_at__lt=run.created_at,
					priority__gte=run.priority,
				)
				.exclude(pk=run.pk)
			)
			if earlier.exists() or not _has_room(run, workflow_limit, tenant_limit):
				logger.info("run %s queued (concurrency limit)", run.pk, extra={"run_id": str(run.pk)})
				return False
		_start(run, created=created)
	return True


def admit_pending(tenant_id: Any, *, batch: int = 100) -> int:
	"""Start queued runs of a tenant while limits allow: highest priority first, then oldest."""
	started = 0
	with transaction.atomic():
		Tenant.objects.select_for_update().filter(pk=tenant_id).first()
		pending = list(
			Run.objects._unfiltered()
			.filter(tenant_id=tenant_id, status=RunStatus.PENDING, state__isnull=True)
			.select_related("workflow", "version", "tenant")
			.order_by("-priority", "created_at")[:batch]
		)
		blocked_workflows: set[Any] = set()
		for run in pending:
			if run.workflow_id in blocked_workflows:
				continue
			workflow_limit, tenant_limit = _limits(run)
			if not _has_room(run, workflow_limit, tenant_limit):
				if tenant_limit is not None and not _has_room(run, None, tenant_limit):
					break
				blocked_workflows.add(run.workflow_id)
				continue
			_start(run)
			started += 1
	return started
