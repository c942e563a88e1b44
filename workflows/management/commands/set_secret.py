"""``manage.py set_secret NAME --tenant SLUG``: store a secret for workflows to use as ``${ .secrets.NAME }``."""

from __future__ import annotations

import getpass
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from workflows.context import tenant_scope
from workflows.errors import ServiceError, ValidationFailed
from workflows.models import Membership, Tenant
from workflows.roles import Role
from workflows.services.secrets import secret_set


class Command(BaseCommand):
	help = (
		"Create or replace a secret of an organization. The value is read from standard input "
		"(or asked for without echo on a terminal), never from the command line, so it stays "
		"out of shell history. It is stored encrypted and never shown again."
	)

	def add_arguments(self, parser: CommandParser) -> None:
		parser.add_argument("name", help="The secret's name, as used in ${ .secrets.NAME }.")
		parser.add_argument("--tenant", required=True, help="The organization's slug.")
		parser.add_argument("--description", default="", help="What it is for.")

	def handle(self, *args: Any, name: str, tenant: str, description: str, **options: Any) -> None:
		organization = Tenant.objects.filter(slug=tenant, is_active=True).first()
		if organization is None:
			raise CommandError(f"No organization {tenant!r}.")
		value = getpass.getpass(f"Value of {name}: ") if sys.stdin.isatty() else sys.stdin.read().rstrip("\n")
		with tenant_scope(organization):
			owner = (
				Membership.objects.filter(role=Role.OWNER)
				.select_related("user")
				.order_by("created_at")
				.first()
			)
			if owner is None:
				raise CommandError(f"{tenant} has no owner.")
			try:
				secret_set(
					actor=owner.user, tenant=organization, name=name, value=value, description=description
				)
			except ValidationFailed as exc:
				raise CommandError(exc.errors[0].message) from None
			except ServiceError as exc:  # pragma: no cover - the owner may always manage secrets
				raise CommandError(str(exc)) from None
		self.stdout.write(f"Secret {name} stored for {tenant}.")
