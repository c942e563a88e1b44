"""``transform.jq``: reshape JSON with a jq expression, in the project's sandboxed engine.

Expressions run through :mod:`workflows.expressions` (jq in killable sandbox processes,
bounded in time and output size; plain paths answered in-process), never Python ``eval``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from connectors.sdk import ActionContext, Connector, PermanentError
from workflows.expressions import (
	ExpressionError,
	ExpressionMultipleValues,
	ExpressionOutputTooLarge,
	ExpressionRuntimeError,
	ExpressionSandboxError,
	ExpressionSyntaxError,
	ExpressionTimeout,
	compile_expression,
)
from workflows.expressions.expression import strip_wrapper

__all__ = ["JqInput", "JqOutput", "connector", "jq"]

connector = Connector(
	"transform",
	"Transform",
	"Reshape, filter and compute JSON with jq expressions, evaluated in a sandbox.",
	"1.0.0",
)

_ERROR_CODES: dict[type[ExpressionError], str] = {
	ExpressionSyntaxError: "expression_syntax_error",
	ExpressionRuntimeError: "expression_runtime_error",
	ExpressionMultipleValues: "expression_multiple_values",
	ExpressionTimeout: "expression_timeout",
	ExpressionOutputTooLarge: "expression_output_too_large",
	ExpressionSandboxError: "expression_sandbox_error",
}


class JqInput(BaseModel):
	"""Parameters of ``transform.jq``."""

	model_config = ConfigDict(extra="forbid", title="jq input")

	expression: str = Field(
		min_length=1,
		description=(
			"A jq expression, with or without its ${ } wrapper, applied to 'data' as its input '.'. "
			"It must produce one value: wrap it in [ ... ] to collect several."
		),
		examples=[".items | map(.price) | add", "{name: .user.name, total: (.items | length)}"],
	)
	data: JsonValue = Field(
		default=None,
		description="The JSON value the expression reads as '.'. When it is an object, its top-level keys are also variables ($name).",
	)


class JqOutput(BaseModel):
	"""Result of ``transform.jq``."""

	model_config = ConfigDict(extra="forbid", title="jq output")

	result: JsonValue = Field(description="The value the expression produced; null when it produced none.")


def _evaluate(source: str, data: JsonValue) -> Any:
	if isinstance(data, dict):
		# An object is the evaluation context itself: '.' is the data, and plain paths are
		# answered in-process without a sandbox round trip.
		return compile_expression(source).evaluate(data)
	# The engine's context must be an object, so other values ride in a wrapper object and
	# the expression is applied to them. The newline keeps a trailing '# comment' from
	# swallowing the closing parenthesis.
	wrapped = compile_expression(f".data | ({strip_wrapper(source)}\n)")
	return wrapped.evaluate({"data": data})


@connector.action(
	name="jq",
	title="Transform with jq",
	description="Applies a jq expression to JSON data and returns the single value it produces.",
	input=JqInput,
	output=JqOutput,
	idempotent=True,
)
async def jq(ctx: ActionContext, params: JqInput) -> JqOutput:
	"""Evaluate ``params.expression`` against ``params.data``.

	Compiling and evaluating may wait on a sandbox process, so both run in a worker thread
	and the event loop stays free.

	Raises:
		PermanentError: The expression is invalid or failed (``expression_syntax_error``,
			``expression_runtime_error``, ``expression_multiple_values``,
			``expression_timeout``, ``expression_output_too_large``,
			``expression_sandbox_error``), with jq's message.
	"""
	try:
		result = await asyncio.to_thread(_evaluate, params.expression, params.data)
	except ExpressionError as exc:
		raise PermanentError(
			f"the jq expression failed: {exc.message}",
			code=_ERROR_CODES.get(type(exc), "expression_error"),
			details={"expression": params.expression},
		) from None
	return JqOutput.model_construct(result=result)
