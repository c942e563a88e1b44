"""``noop.noop``: does nothing, as cheaply as possible (benchmarks measure the engine with it)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from connectors.sdk import ActionContext, Connector

__all__ = ["NoopInput", "NoopOutput", "connector", "noop"]

connector = Connector(
	"noop",
	"No-op",
	"Does nothing and succeeds at once; useful as a placeholder and to measure the engine's own overhead.",
	"1.0.0",
)


class NoopInput(BaseModel):
	"""Parameters of ``noop.noop``."""

	model_config = ConfigDict(extra="forbid", title="No-op input")

	value: JsonValue = Field(
		default=None, description="Any JSON value to pass through unchanged as the output's 'value'."
	)


class NoopOutput(BaseModel):
	"""Result of ``noop.noop``: empty, or the value it was given."""

	model_config = ConfigDict(extra="forbid", title="No-op output")

	value: JsonValue = Field(
		default=None,
		description="The input's 'value'; absent when none was given.",
		exclude_if=lambda value: value is None,
	)


_EMPTY = NoopOutput()


@connector.action(
	name="noop",
	title="Do nothing",
	description="Succeeds at once; echoes 'value' when one is given, otherwise returns an empty object.",
	input=NoopInput,
	output=NoopOutput,
	idempotent=True,
)
async def noop(ctx: ActionContext, params: NoopInput) -> NoopOutput:
	"""Return at once; the value needs no second validation, so it is passed through as is."""
	if params.value is None:
		return _EMPTY
	return NoopOutput.model_construct(value=params.value)
