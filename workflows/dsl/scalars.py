"""Scalar field types of a definition: ids, names, expressions, templates, durations, timestamps.

Each is an ``Annotated`` alias of a plain JSON type (``str``, ``int``, a JSON value), so the
document stays plain JSON, with a validator that raises an error carrying our own code
and hint, and JSON Schema keywords that say the same to the designer. Lengths are checked
against :data:`workflows.dsl.limits.LIMITS`, and the message names the limit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, LiteralString, TypeAlias

from jsonschema import Draft202012Validator, SchemaError
from pydantic import AfterValidator, Field, JsonValue
from pydantic_core import PydanticCustomError

from workflows.dsl.limits import LIMITS

__all__ = [
	"CaseId",
	"ConnectionName",
	"Description",
	"Duration",
	"ErrorCode",
	"Expression",
	"Handle",
	"Identifier",
	"JsonSchema",
	"Name",
	"NodeId",
	"Seconds",
	"Slug",
	"Template",
	"Until",
	"Username",
	"custom_error",
	"looks_like_iso_duration",
	"looks_like_timestamp",
	"parse_duration",
	"parse_iso_duration",
	"parse_timestamp",
]

_ID_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
_SLUG_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_ERROR_CODE_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]+$")
_DURATION_SHAPE = re.compile(r"^P[0-9.,YMWDTHS]*$")
_ISO_DURATION = re.compile(
	r"^P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
	r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)
_TIMESTAMP_SHAPE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def custom_error(
	code: LiteralString, message: str, *, field: str | None = None, hint: str = ""
) -> PydanticCustomError:
	"""A Pydantic error carrying our code, hint and (optionally) the field it concerns.

	The message travels in the context rather than the template so that braces in user
	values are never read as format fields. :mod:`workflows.dsl.errors` turns ``field``
	into the last segment of the error's JSON pointer.
	"""
	context: dict[str, Any] = {"message": message, "hint": hint}
	if field is not None:
		context["field"] = field
	return PydanticCustomError(code, "{message}", context)


def _text(
	what: str,
	*,
	limit: str,
	pattern: re.Pattern[str] | None = None,
	pattern_hint: str = "",
	allow_empty: bool = True,
) -> Callable[[str], str]:
	"""A validator for a string field: not empty (optionally), within a limit, matching a pattern."""
	max_length: int = getattr(LIMITS, limit)

	def check(value: str) -> str:
		if not value and not allow_empty:
			raise custom_error("empty", f"{what} is empty", hint=f"give a {what}")
		if len(value) > max_length:
			raise custom_error(
				"limit_exceeded",
				f"{what} is {len(value)} characters long; the limit is {max_length} ({limit})",
				hint=f"shorten it to at most {max_length} characters",
			)
		if pattern is not None and value and not pattern.match(value):
			raise custom_error(
				"invalid_format", f"{what} {value!r} is not valid: {pattern_hint}", hint=pattern_hint
			)
		return value

	return check


def _string_schema(*, limit: str, pattern: re.Pattern[str] | None = None, **extra: Any) -> dict[str, Any]:
	schema: dict[str, Any] = {"maxLength": getattr(LIMITS, limit), **extra}
	if pattern is not None:
		schema["pattern"] = pattern.pattern
	return schema


def _constrained(
	what: str,
	*,
	limit: str,
	pattern: re.Pattern[str] | None = None,
	pattern_hint: str = "",
	allow_empty: bool = False,
) -> Any:
	"""An ``Annotated[str, ...]`` type with our validator and the matching JSON Schema keywords."""
	extra: dict[str, Any] = {} if allow_empty else {"minLength": 1}
	return Annotated[
		str,
		AfterValidator(
			_text(what, limit=limit, pattern=pattern, pattern_hint=pattern_hint, allow_empty=allow_empty)
		),
		Field(json_schema_extra=_string_schema(limit=limit, pattern=pattern, **extra)),
	]


_ID_HINT = "start with a letter or '_' and use only letters, digits, '_' and '-'"

if TYPE_CHECKING:
	NodeId: TypeAlias = str
	Name: TypeAlias = str
	Description: TypeAlias = str
	Identifier: TypeAlias = str
	Slug: TypeAlias = str
	ErrorCode: TypeAlias = str
	CaseId: TypeAlias = str
	Handle: TypeAlias = str
	Username: TypeAlias = str
	ConnectionName: TypeAlias = str
else:
	NodeId = _constrained("node id", limit="max_node_id_length", pattern=_ID_PATTERN, pattern_hint=_ID_HINT)
	Name = _constrained("name", limit="max_name_length", allow_empty=True)
	Description = _constrained("description", limit="max_description_length", allow_empty=True)
	Identifier = _constrained(
		"name",
		limit="max_name_length",
		pattern=_NAME_PATTERN,
		pattern_hint="start with a letter and use only letters, digits, '_', '.' and '-'",
	)
	Slug = _constrained(
		"workflow slug",
		limit="max_name_length",
		pattern=_SLUG_PATTERN,
		pattern_hint="use letters, digits, '_' and '-', starting with a letter or digit",
	)
	ErrorCode = _constrained(
		"error code",
		limit="max_name_length",
		pattern=_ERROR_CODE_PATTERN,
		pattern_hint="use letters, digits and '_', '.', ':' or '-'",
	)
	CaseId = _constrained("case id", limit="max_node_id_length", pattern=_ID_PATTERN, pattern_hint=_ID_HINT)
	Handle = _constrained(
		"source handle", limit="max_node_id_length", pattern=_ID_PATTERN, pattern_hint=_ID_HINT
	)
	Username = _constrained("username", limit="max_name_length")
	ConnectionName = _constrained("connection name", limit="max_name_length")


def _check_expression(value: str) -> str:
	if not value.strip():
		raise custom_error(
			"empty", "the expression is empty", hint="write a jq expression such as '.input.count > 0'"
		)
	return _text("expression", limit="max_expression_length")(value)


Expression = Annotated[
	str,
	AfterValidator(_check_expression),
	Field(
		json_schema_extra=_string_schema(
			limit="max_expression_length",
			minLength=1,
			format="jq",
			description="A jq expression, with or without ${ }.",
		)
	),
]
"""A jq expression, written bare (``.input.count > 3``) or wrapped (``${ .input.count > 3 }``)."""

Template = Annotated[
	JsonValue,
	Field(json_schema_extra={"description": "Any JSON value; strings may embed ${ jq } expressions."}),
]
"""Any JSON value whose strings may embed ``${ ... }`` expressions, evaluated at run time."""


def _check_json_schema(value: dict[str, Any]) -> dict[str, Any]:
	try:
		Draft202012Validator.check_schema(value)
	except SchemaError as err:
		where = "/".join(_escape(part) for part in err.path)
		raise custom_error(
			"invalid_json_schema",
			f"not a valid JSON Schema (draft 2020-12): {err.message}",
			field=where or None,
			hint="fix the schema; see https://json-schema.org/draft/2020-12 for the keywords",
		) from None
	return value


def _escape(part: object) -> str:
	return str(part).replace("~", "~0").replace("/", "~1")


JsonSchema = Annotated[
	dict[str, JsonValue],
	AfterValidator(_check_json_schema),
	Field(json_schema_extra={"description": "A JSON Schema (draft 2020-12)."}),
]


def looks_like_iso_duration(text: str) -> bool:
	"""Whether a string is meant as an ISO-8601 duration (rather than a jq expression)."""
	return bool(_DURATION_SHAPE.match(text))


def parse_iso_duration(text: str) -> float:
	"""Seconds in an ISO-8601 duration such as ``PT5S``, ``PT1H30M`` or ``P2DT12H``.

	Weeks, days, hours, minutes and (fractional) seconds are accepted; years and months
	are refused because their length depends on the calendar.

	Args:
		text: The duration.

	Returns:
		The duration in seconds.

	Raises:
		ValueError: The text is not such a duration.
	"""
	match = _ISO_DURATION.match(text)
	if match is None or text in {"P", "PT"} or text.endswith("T"):
		raise ValueError(f"{text!r} is not an ISO-8601 duration like PT30S, PT5M or P1DT2H")
	parts = {key: float(value) for key, value in match.groupdict().items() if value is not None}
	return (
		parts.get("weeks", 0) * 604_800
		+ parts.get("days", 0) * 86_400
		+ parts.get("hours", 0) * 3_600
		+ parts.get("minutes", 0) * 60
		+ parts.get("seconds", 0)
	)


def looks_like_timestamp(text: str) -> bool:
	"""Whether a string is meant as an ISO-8601 timestamp (rather than a jq expression)."""
	return bool(_TIMESTAMP_SHAPE.match(text))


def parse_timestamp(text: str) -> datetime:
	"""An aware datetime from an ISO-8601 timestamp with an offset, e.g. ``2025-01-31T09:00:00Z``.

	Raises:
		ValueError: Not a timestamp, or one without a time zone offset.
	"""
	value = datetime.fromisoformat(text)
	if value.tzinfo is None:
		raise ValueError(f"{text!r} has no time zone offset; add 'Z' or '+02:00'")
	return value


def parse_duration(value: str | int | float) -> float | None:
	"""Seconds of a wait ``duration``, or None when it is an expression known only at run time.

	Raises:
		ValueError: A string shaped like an ISO duration that is not a valid one.
	"""
	if isinstance(value, str):
		return parse_iso_duration(value) if looks_like_iso_duration(value) else None
	return float(value)


def _check_duration(value: str | int | float) -> str | int | float:
	if isinstance(value, str):
		if looks_like_iso_duration(value):
			try:
				parse_iso_duration(value)
			except ValueError as err:
				raise custom_error(
					"invalid_duration",
					str(err),
					hint="use weeks, days, hours, minutes and seconds, e.g. PT90S or P1DT6H",
				) from None
			return value
		return _check_expression(value)
	if not math.isfinite(value) or value < 0:
		raise custom_error(
			"invalid_duration", f"a duration of {value} seconds is not possible", hint="use 0 or more seconds"
		)
	return value


def _check_until(value: str) -> str:
	if looks_like_timestamp(value):
		try:
			parse_timestamp(value)
		except ValueError as err:
			raise custom_error(
				"invalid_timestamp",
				f"{value!r} is not a usable timestamp: {err}",
				hint="write an ISO-8601 timestamp with an offset, e.g. 2025-01-31T09:00:00Z",
			) from None
		return value
	return _check_expression(value)


Duration = Annotated[
	str | int | float,
	AfterValidator(_check_duration),
	Field(json_schema_extra={"description": "Seconds, an ISO-8601 duration (PT5M) or a jq expression."}),
]

Until = Annotated[
	str,
	AfterValidator(_check_until),
	Field(json_schema_extra={"description": "An ISO-8601 timestamp with offset, or a jq expression."}),
]

Seconds = Annotated[int, Field(ge=1, le=10 * 365 * 86_400)]
"""A whole number of seconds, at least 1 and at most ten years."""
