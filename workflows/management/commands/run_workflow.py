"""``manage.py run_workflow <workflow> --input JSON --follow``: start a run and watch it live."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from workflows.context import tenant_scope
from workflows.engine.status import TERMINAL_RUN_STATUSES, RunStatus
from workflows.errors import ServiceError, ValidationFailed
from workflows.models import Membership, Run, RunEvent, Tenant, User
from workflows.roles import Role
from workflows.selectors.definitions import workflow_get
from workflows.services.runs import run_start

_NOT_STEPS = frozenset({"start", "end"})


class Command(BaseCommand):
	help = (
		"Start a run of a published workflow (by slug or id) and, with --follow, show it live: "
		"a progress bar over its steps, the node now running, then the output or the error. "
		"Exits 0 when the run succeeds, 1 when it ends otherwise."
	)

	def add_arguments(self, parser: CommandParser) -> None:
		parser.add_argument("workflow", help="The workflow's slug or id.")
		parser.add_argument("--input", default="{}", help="The run input as JSON (default {}).")
		parser.add_argument("--tenant", help="The organization's slug (needed when there are several).")
		parser.add_argument("--user", help="Start as this member (default: the organization's first owner).")
		parser.add_argument(
			"--pin-version",
			dest="pin_version",
			type=int,
			help="Run this published version (default: the latest).",
		)
		parser.add_argument("--priority", type=int, help="0 to 9; higher starts first under contention.")
		parser.add_argument("--follow", action="store_true", help="Show the run live until it ends.")
		parser.add_argument(
			"--timeout", type=float, default=3600, help="Stop following after this many seconds."
		)

	def handle(self, *args: Any, **options: Any) -> None:
		try:
			run_input = json.loads(options["input"])
		except json.JSONDecodeError as exc:
			raise CommandError(f"--input is not valid JSON: {exc.msg} at column {exc.colno}.") from None
		tenant = self._tenant(options.get("tenant"))
		with tenant_scope(tenant):
			actor = self._actor(tenant, options.get("user"))
			try:
				workflow = workflow_get(actor=actor, tenant=tenant, workflow_id=options["workflow"])
				worker = self._embedded_worker() if options["follow"] else None
				run = run_start(
					actor=actor,
					workflow=workflow,
					input=run_input,
					version=options.get("pin_version"),
					priority=options.get("priority"),
				)
			except ValidationFailed as exc:
				details = "\n".join(f"  {e.pointer or '/'}: {e.message}" for e in exc.errors)
				raise CommandError(f"{exc}\n{details}") from None
			except ServiceError as exc:
				raise CommandError(str(exc)) from None
			self.stdout.write(f"Started run {run.pk} of {workflow.slug} v{run.version.number}.")
			if not options["follow"]:
				return
			try:
				status = self._follow(run, total=self._step_count(run), timeout=options["timeout"])
			finally:
				if worker is not None:
					worker.stop()
		if status != RunStatus.SUCCEEDED:
			sys.exit(1)

	def _tenant(self, slug: str | None) -> Tenant:
		tenants = Tenant.objects.filter(is_active=True)
		if slug:
			tenant = tenants.filter(slug=slug).first()
			if tenant is None:
				raise CommandError(
					f"No organization {slug!r}. Known: {', '.join(tenants.values_list('slug', flat=True)) or 'none'}."
				)
			return tenant
		if tenants.count() != 1:
			raise CommandError(
				f"Name the organization with --tenant (one of: {', '.join(tenants.values_list('slug', flat=True)) or 'none'})."
			)
		return tenants.get()

	def _actor(self, tenant: Tenant, username: str | None) -> User:
		members = Membership.objects.for_tenant(tenant).select_related("user")
		membership = (
			members.filter(user__username=username).first()
			if username
			else members.filter(role=Role.OWNER).order_by("created_at").first()
		)
		if membership is None:
			raise CommandError(
				f"{username!r} is not a member of {tenant.slug}."
				if username
				else f"{tenant.slug} has no owner."
			)
		return membership.user

	def _embedded_worker(self) -> Any:
		"""Without Redis the broker lives in this process, so this process must run a worker too."""
		if not settings.EMBEDDED_WORKER:
			return None
		from config.embedded import EmbeddedWorker

		worker = EmbeddedWorker(concurrency=settings.EMBEDDED_WORKER_CONCURRENCY)
		worker.start()
		return worker

	def _step_count(self, run: Run) -> int:
		nodes = run.version.definition.get("nodes", [])
		return max(1, sum(1 for n in nodes if n.get("type") not in _NOT_STEPS))

	def _follow(self, run: Run, *, total: int, timeout: float) -> str:
		seq, done, current = 0, set(), "-"
		deadline = time.monotonic() + timeout
		tty = self.stdout.isatty()
		while True:
			for event in RunEvent.objects.for_tenant(run.tenant).filter(run=run, seq__gt=seq).order_by("seq"):
				seq = event.seq
				node = event.data.get("node") if isinstance(event.data, dict) else None
				if event.type in ("step.scheduled", "step.waiting") and node:
					current = node
				if (
					event.type in ("step.succeeded", "step.failed")
					and node
					and node not in _NOT_STEPS
					and "[" not in event.step_key
					and "#" not in event.step_key
				):
					done.add(node)
				if not tty:
					self.stdout.write(f"  {event.seq:>4} {event.type:<22} {event.step_key}")
			run.refresh_from_db(fields=["status", "output", "error"])
			self._progress(len(done), total, current, run.status, tty)
			if run.status in TERMINAL_RUN_STATUSES:
				break
			if time.monotonic() > deadline:
				self.stdout.write(f"\nStill {run.status} after {timeout:.0f} s; it goes on without us.")
				return run.status
			time.sleep(0.1)
		if tty:
			self.stdout.write("")
		if run.status == RunStatus.SUCCEEDED:
			self.stdout.write(self.style.SUCCESS("Succeeded. Output:"))
			self.stdout.write(json.dumps(run.output, indent=2, ensure_ascii=False))
		else:
			self.stdout.write(self.style.ERROR(f"Run {run.status}."))
			self.stdout.write(json.dumps(run.error, indent=2, ensure_ascii=False))
		return run.status

	def _progress(self, done: int, total: int, current: str, status: str, tty: bool) -> None:
		done = min(done, total)
		width = 30
		filled = int(width * done / total)
		line = f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} steps  {status:<12} now: {current}"
		if tty:
			self.stdout.write("\r" + line.ljust(100), ending="")
			self.stdout.flush()
		elif status in TERMINAL_RUN_STATUSES:
			self.stdout.write(line)
