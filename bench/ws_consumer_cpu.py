"""CPU time of the WebSocket consumers per live event sent to one connection, without sockets.

What one connection's consumer spends on each event of a step completion published by
``workflows.engine.effects.publish_events``: decoding the channel layer's message (msgpack, as
the Redis layers deliver it to each connection), dispatching it, the tenant stream's dedup and
cursor, and building the text frame, up to the ASGI ``send`` (Daphne's share is not included).
Best of ``--repeat`` passes over ``--events`` events, in CPU time (``time.process_time``); no
database, no Redis.

    uv run python bench/ws_consumer_cpu.py [--events 12000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import time
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


class Sink:
	"""An ASGI ``send`` that counts the messages."""

	def __init__(self) -> None:
		self.sent = 0

	async def __call__(self, message: dict[str, Any]) -> None:
		self.sent += 1


def connected(cls: type) -> Any:
	"""A consumer in the state ``connect`` leaves it in (no handshake, no database)."""
	from workflows.consumers import TenantEventsConsumer, _now_ms

	consumer = object.__new__(cls)
	consumer.base_send = Sink()
	if cls is TenantEventsConsumer:
		consumer.sent, consumer.window, consumer.run_ids = OrderedDict(), OrderedDict(), {}
		consumer.floor = _now_ms()
	else:
		consumer.last_seq = 0
	return consumer


def published(completions: int, runs: int) -> dict[str, list[bytes]]:
	"""The layer messages (msgpack) of ``completions`` step completions over ``runs`` runs, per type."""
	import msgpack

	from workflows.engine import effects

	captured: list[dict[str, Any]] = []
	original = effects.live.send
	effects.live.send = lambda group, message: captured.append(message)  # type: ignore[method-assign]
	try:
		for n in range(completions):
			run, i = str(uuid.UUID(int=n % runs + 1)), n // runs
			effects.publish_events(
				run_id=run,
				tenant_id="t",
				events=[
					(
						2 * i + 1,
						"step.succeeded",
						f"root:s{i}",
						{"key": f"root:s{i}", "node": f"s{i}", "output": {}},
					),
					(
						2 * i + 2,
						"step.scheduled",
						f"root:s{i + 1}",
						{"key": f"root:s{i + 1}", "node": f"s{i + 1}", "attempt": 1},
					),
				],
			)
	finally:
		effects.live.send = original  # type: ignore[method-assign]
	by_type: dict[str, list[bytes]] = {}
	for message in captured:
		packed = msgpack.packb(message)
		assert packed is not None
		by_type.setdefault(message["type"], []).append(packed)
	return by_type


async def measure(cls: type, messages: list[bytes], repeat: int) -> tuple[float, int]:
	"""Best CPU seconds per event sent, and the events sent per pass."""
	import msgpack

	best, sent = float("inf"), 0
	for _ in range(repeat):
		consumer = connected(cls)
		gc.collect()
		began = time.process_time()
		for raw in messages:
			await consumer.dispatch(msgpack.unpackb(raw))
		sent = consumer.base_send.sent
		best = min(best, (time.process_time() - began) / sent)
	return best, sent


def main() -> None:
	parser = argparse.ArgumentParser(
		description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
	)
	parser.add_argument("--events", type=int, default=12000, help="events per pass (default 12000)")
	parser.add_argument("--runs", type=int, default=3, help="runs they belong to (default 3)")
	parser.add_argument("--repeat", type=int, default=5, help="passes; the best counts (default 5)")
	args = parser.parse_args()
	os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
	import django

	django.setup()
	from workflows.consumers import RunEventsConsumer, TenantEventsConsumer

	messages = published(args.events // 2, args.runs)
	for cls, kind in ((TenantEventsConsumer, "tenant.events"), (RunEventsConsumer, "run.events")):
		per_event, sent = asyncio.run(measure(cls, messages[kind], args.repeat))
		print(
			f"{cls.__name__}: {per_event * 1e6:.1f} us CPU per event sent ({sent:,} events, best of {args.repeat})"
		)


if __name__ == "__main__":
	main()
