"""``fail.fail``: fails on purpose with the error asked for (tests, demos, retry policies)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from connectors.sdk import ActionContext, Connector, PermanentError, RetryableError

__all__ = ["FailInput", "FailOutput", "connector", "fail"]

connector = Connector(
	"fail",
	"Fail",
	"Fails on purpose with the error you choose; use it to try out retry policies, error branches and compensation.",
	"1.0.0",
)


class FailInput(BaseModel):
	"""Parameters of ``fail.fail``."""

	model_config = ConfigDict(extra="forbid", title="Fail input")

	code: str = Field(
		default="demo_failure",
		min_length=1,
		max_length=100,
		pattern=r"^[A-Za-z0-9_.:-]+$",
		description="Error code the step fails with (letters, digits, '_', '.', ':' or '-').",
	)
	message: str = Field(
		default="this step failed on purpose",
		max_length=2000,
		description="Error message the step fails with.",
	)
	retryable: bool = Field(
		default=False, description="Whether the failure is retryable, so the node's retry policy applies."
	)
	details: dict[str, JsonValue] = Field(
		default_factory=dict, description="Extra JSON facts to attach to the error."
	)


class FailOutput(BaseModel):
	"""``fail.fail`` never succeeds, so it has no output."""

	model_config = ConfigDict(extra="forbid", title="Fail output")


@connector.action(
	name="fail",
	title="Fail",
	description="Always fails, with the code, message and retryability you choose.",
	input=FailInput,
	output=FailOutput,
	idempotent=True,
)
async def fail(ctx: ActionContext, params: FailInput) -> FailOutput:
	"""Raise the error described by ``params``.

	Raises:
		RetryableError: When ``params.retryable``.
		PermanentError: Otherwise.
	"""
	error = RetryableError if params.retryable else PermanentError
	raise error(params.message, code=params.code, details=params.details)
