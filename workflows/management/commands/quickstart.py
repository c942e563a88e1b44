"""``manage.py quickstart``: migrate, create the demo account, and serve web and worker in one process."""

from __future__ import annotations

import socket
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from workflows.defaults import ensure_demo_account, load_default_data


class Command(BaseCommand):
	help = (
		"Set up and run everything in one process: migrate the database, create the demo "
		"tenant and owner, load default data, then serve HTTP and WebSocket (daphne) with an "
		"embedded Celery worker. Ctrl-C stops it."
	)
	requires_system_checks: list = []

	def add_arguments(self, parser: CommandParser) -> None:
		parser.add_argument("--host", default="127.0.0.1", help="Interface to listen on (default 127.0.0.1).")
		parser.add_argument("--port", type=int, default=8000, help="Port to listen on (default 8000).")
		parser.add_argument("--no-serve", action="store_true", help="Set up only; do not start the server.")

	def handle(self, *args: Any, host: str, port: int, no_serve: bool, **options: Any) -> None:
		if not 1 <= port <= 65535:
			raise CommandError(f"--port must be from 1 to 65535, not {port}.")
		call_command("check", fail_level="ERROR")
		self.stdout.write("Migrating the database…")
		call_command("migrate", interactive=False, verbosity=0)
		account = ensure_demo_account()
		loaded = load_default_data()
		self._print_account(account, loaded)
		if no_serve:
			return
		self._serve(host, port)

	def _print_account(self, account: Any, loaded: dict[str, int]) -> None:
		self.stdout.write(self.style.SUCCESS(f"Organization: {account.tenant.name} ({account.tenant.slug})"))
		self.stdout.write(f"Username:     {account.username}")
		if account.password is not None:
			self.stdout.write(f"Password:     {account.password}")
		else:
			self.stdout.write(
				"Password:     unchanged (as printed on the first run; "
				f"`uv run manage.py changepassword {account.username}` sets a new one)"
			)
		if loaded["added"] or loaded["updated"]:
			self.stdout.write(f"Templates: {loaded['added']} added, {loaded['updated']} updated.")

	def _serve(self, host: str, port: int) -> None:
		family = socket.AF_INET6 if ":" in host else socket.AF_INET
		with socket.socket(family, socket.SOCK_STREAM) as probe:
			probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
			try:
				probe.bind((host, port))
			except OSError as exc:
				raise CommandError(
					f"Cannot listen on {host}:{port} ({exc.strerror}); pass --port or --host."
				) from None
		if host not in settings.ALLOWED_HOSTS and "*" not in settings.ALLOWED_HOSTS:
			settings.ALLOWED_HOSTS.append(host)
		from daphne.server import Server

		from config.asgi import application
		from config.embedded import embedded_worker

		shown = f"[{host}]" if ":" in host else host
		self.stdout.write(self.style.SUCCESS(f"Serving on http://{shown}:{port}/  (Ctrl-C stops)"))
		endpoint = f"tcp:port={port}:interface={host.replace(':', chr(92) + ':')}"
		try:
			Server(application=application, endpoints=[endpoint], verbosity=0).run()
		finally:
			worker = embedded_worker()
			if worker.running:
				worker.stop()
			self.stdout.write("Stopped.")
