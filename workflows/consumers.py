"""WebSocket consumers of the workflows app."""

from __future__ import annotations

import logging
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from workflows.engine.effects import tenant_group

__all__ = ["TenantEventsConsumer", "tenant_group"]


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
