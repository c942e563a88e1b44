"""``delay.sleep``: a short pause inside a step.

For waits longer than a few minutes use the workflow's wait node: a waiting run holds no
worker, while this action holds one for as long as it sleeps.
"""

from __future__ import annotations

import asyncio
import time

from pydantic import BaseModel, ConfigDict, Field

from connectors.sdk import ActionCancelled, ActionContext, Connector

__all__ = ["MAX_SECONDS", "SleepInput", "SleepOutput", "connector", "sleep"]

MAX_SECONDS = 300.0

connector = Connector(
	"delay",
	"Delay",
	"Short pauses inside a step (up to five minutes); use a wait node for anything longer.",
	"1.0.0",
)


class SleepInput(BaseModel):
	"""Parameters of ``delay.sleep``."""

	model_config = ConfigDict(extra="forbid", title="Sleep input")

	seconds: float = Field(
		ge=0,
		le=MAX_SECONDS,
		description="How long to pause, in seconds (0 to 300). Cancelling the run ends the pause at once.",
	)


class SleepOutput(BaseModel):
	"""Result of ``delay.sleep``."""

	model_config = ConfigDict(extra="forbid", title="Sleep output")

	slept_seconds: float = Field(description="How long the pause actually lasted, in seconds.")


@connector.action(
	name="sleep",
	title="Pause",
	description="Pauses for a number of seconds (at most 300); ends early, as cancelled, if the run is cancelled.",
	input=SleepInput,
	output=SleepOutput,
	idempotent=True,
)
async def sleep(ctx: ActionContext, params: SleepInput) -> SleepOutput:
	"""Wait for ``params.seconds`` or for ``ctx.cancel``, whichever comes first.

	Raises:
		ActionCancelled: The signal was set before the time was up.
	"""
	started = time.monotonic()
	try:
		async with asyncio.timeout(params.seconds):
			await ctx.cancel.wait()
	except TimeoutError:
		return SleepOutput(slept_seconds=round(time.monotonic() - started, 6))
	raise ActionCancelled(ctx.cancel.reason or "the pause was cancelled")
