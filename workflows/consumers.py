"""WebSocket consumers of the workflows app."""

from __future__ import annotations

import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from workflows.engine.effects import run_group, tenant_group

__all__ = ["RunEventsConsumer", "TenantEventsConsumer", "tenant_group"]


class TenantEventsConsumer(AsyncJsonWebsocketConsumer):
	"""``/ws/tenant/``: live events of the member's tenant. Anyone else is refused at connect."""

	logger = logging.getLogger("apg.ws")

	async def connect(self) -> None:
		user = self.scope.get("user")
		tenant = self.scope.get("tenant")
		if self.scope.get("auth_failed") or user is None or not user.is_authenticated or tenant is None:
			self._log_refused()
			await self.close(code=4401)
			return
		self.group = tenant_group(tenant.pk)
		await self.channel_layer.group_add(self.group, self.channel_name)
		subprotocol = "apg.v1" if "apg.v1" in self.scope.get("subprotocols", []) else None
		await self.accept(subprotocol=subprotocol)
		await self.send_json({"type": "hello", "tenant": tenant.slug, "user": user.get_username()})

	async def disconnect(self, code: int) -> None:
		group = getattr(self, "group", None)
		if group is not None:
			await self.channel_layer.group_discard(group, self.channel_name)

	async def receive_json(self, content: Any, **kwargs: Any) -> None:
		if isinstance(content, dict) and content.get("type") == "ping":
			await self.send_json({"type": "pong"})
		else:
			await self.send_json({"type": "error", "detail": 'Unknown message; send {"type": "ping"}.'})

	async def tenant_event(self, message: dict[str, Any]) -> None:
		"""Forward one published event to the client."""
		await self.send_json({"type": "event", "event": message["event"]})

	async def tenant_events(self, message: dict[str, Any]) -> None:
		"""Forward a transition's events (published together) one by one, in order."""
		for event in message["events"]:
			await self.send_json({"type": "event", "event": event})

	def _log_refused(self) -> None:
		self.logger.info("websocket refused", extra={"path": self.scope.get("path")})


class RunEventsConsumer(AsyncJsonWebsocketConsumer):
	"""``/ws/runs/<id>/?after=N``: the run's events after sequence N, then live, in order, none missed.

	The consumer joins the run's group *before* reading the backlog, and drops live events
	it already sent from the backlog, so an event published in between is neither lost nor
	sent twice.
	"""

	logger = logging.getLogger("apg.ws")

	async def connect(self) -> None:
		user = self.scope.get("user")
		tenant = self.scope.get("tenant")
		run_id = self.scope.get("url_route", {}).get("kwargs", {}).get("run_id")
		if self.scope.get("auth_failed") or user is None or not user.is_authenticated or tenant is None:
			await self.close(code=4401)
			return
		run = await self._run(user, tenant, run_id)
		if run is None:
			await self.close(code=4404)
			return
		self.run = run
		self.last_seq = _after(self.scope.get("query_string", b""))
		self.group = run_group(run.pk)
		await self.channel_layer.group_add(self.group, self.channel_name)
		subprotocol = "apg.v1" if "apg.v1" in self.scope.get("subprotocols", []) else None
		await self.accept(subprotocol=subprotocol)
		for event in await self._backlog(self.last_seq):
			await self._send_event(event)
		await self.send_json({"type": "caught_up", "seq": self.last_seq, "status": await self._status()})

	async def disconnect(self, code: int) -> None:
		group = getattr(self, "group", None)
		if group is not None:
			await self.channel_layer.group_discard(group, self.channel_name)

	async def run_events(self, message: dict[str, Any]) -> None:
		"""Live events of a transition; those already sent from the backlog are skipped."""
		for event in message["events"]:
			if event["seq"] > self.last_seq:
				await self._send_event(event)

	async def _send_event(self, event: dict[str, Any]) -> None:
		self.last_seq = max(self.last_seq, event["seq"])
		await self.send_json({"type": "event", "event": event})

	@database_sync_to_async
	def _run(self, user: Any, tenant: Any, run_id: Any) -> Any:
		from workflows.errors import NotFound, PermissionDenied
		from workflows.selectors.runs import run_get

		try:
			return run_get(actor=user, tenant=tenant, run_id=run_id)
		except (NotFound, PermissionDenied):
			return None

	@database_sync_to_async
	def _backlog(self, after: int) -> list[dict[str, Any]]:
		from workflows.selectors.runs import run_events_after

		return [
			{"run": str(e.run_id), "seq": e.seq, "type": e.type, "step": e.step_key, "data": e.data}
			for e in run_events_after(actor=None, run=self.run, after=after, limit=10_000)
		]

	@database_sync_to_async
	def _status(self) -> str:
		self.run.refresh_from_db(fields=["status"])
		return self.run.status


def _after(query_string: bytes) -> int:
	from urllib.parse import parse_qs

	values = parse_qs(query_string.decode("latin-1")).get("after", ["0"])
	try:
		return max(0, int(values[0]))
	except ValueError:
		return 0
