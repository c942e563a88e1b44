"""Per-request and per-task context: request id, client address, bound tenant, run and step.

ContextVars work alike in sync views, async consumers and Celery tasks. The tenant bound
here is what tenant-owned managers filter by (see :mod:`workflows.models.base`); binding
is explicit, through :func:`tenant_scope`, and so is the bypass, :func:`dangerously_unscoped`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
	from workflows.models import Tenant

__all__ = [
	"UNSCOPED",
	"ContextLogFilter",
	"bound_tenant",
	"client_ip",
	"dangerously_unscoped",
	"request_id",
	"run_context",
	"tenant_scope",
]


class _Unscoped:
	"""Marker bound while system code deliberately reads across tenants."""

	def __repr__(self) -> str:
		return "UNSCOPED"


UNSCOPED: Final = _Unscoped()

_tenant: ContextVar[Tenant | _Unscoped | None] = ContextVar("apg_tenant", default=None)
request_id: ContextVar[str | None] = ContextVar("apg_request_id", default=None)
client_ip: ContextVar[str | None] = ContextVar("apg_client_ip", default=None)
_run_id: ContextVar[str | None] = ContextVar("apg_run_id", default=None)
_step_id: ContextVar[str | None] = ContextVar("apg_step_id", default=None)


def bound_tenant() -> Tenant | _Unscoped | None:
	"""The tenant bound to this context, :data:`UNSCOPED`, or None."""
	return _tenant.get()


@contextmanager
def tenant_scope(tenant: Tenant) -> Iterator[Tenant]:
	"""Bind ``tenant`` for the block: tenant-owned managers then filter by it."""
	assert tenant is not None, "tenant_scope needs a tenant"
	assert tenant.pk is not None, "tenant_scope needs a saved tenant"
	token = _tenant.set(tenant)
	try:
		yield tenant
	finally:
		_tenant.reset(token)


@contextmanager
def dangerously_unscoped() -> Iterator[None]:
	"""Let tenant-owned managers read every tenant's rows for the block.

	For system code only (migrations, the superuser admin, sweepers that serve every
	tenant). A test keeps its uses to an allowlist.
	"""
	token = _tenant.set(UNSCOPED)
	try:
		yield
	finally:
		_tenant.reset(token)


@contextmanager
def run_context(*, run_id: object, step_id: object | None = None) -> Iterator[None]:
	"""Bind a run (and step) id so every log line inside carries them."""
	run_token = _run_id.set(str(run_id))
	step_token = _step_id.set(None if step_id is None else str(step_id))
	try:
		yield
	finally:
		_step_id.reset(step_token)
		_run_id.reset(run_token)


class ContextLogFilter(logging.Filter):
	"""Copy the bound request, tenant, run and step ids onto every log record."""

	def filter(self, record: logging.LogRecord) -> bool:
		tenant = _tenant.get()
		record.request_id = getattr(record, "request_id", None) or request_id.get() or "-"
		record.tenant_id = getattr(record, "tenant_id", None) or (
			str(tenant.pk) if tenant is not None and not isinstance(tenant, _Unscoped) else "-"
		)
		record.run_id = getattr(record, "run_id", None) or _run_id.get() or "-"
		record.step_id = getattr(record, "step_id", None) or _step_id.get() or "-"
		return True
