"""The standard evaluation context every node's expressions see.

====================  ==========================================================
``$input`` / .input    the workflow run's input
``$steps`` / .steps    node id → ``{"output": ..., "status": ...}`` of finished steps
``$item``, ``$index``  the current element and its position inside a map or loop
``$run`` / .run        run metadata (ids, start time, attempt)
``$secrets``           secret name → ``"secret://<name>"`` marker, never the value
====================  ==========================================================
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import uuid
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, Final, Literal

from workflows.expressions.secrets import secret_markers

__all__ = ["STANDARD_KEYS", "build_context", "to_json_value"]

STANDARD_KEYS: Final = frozenset({"input", "steps", "item", "index", "run", "secrets"})


class _Unset(enum.Enum):
	UNSET = "UNSET"


def to_json_value(value: Any) -> Any:
	"""Convert common Python values to JSON ones: datetimes and dates to ISO 8601 text, UUIDs to
	text, Decimals to numbers, enums to their values, tuples and sets to lists, dataclasses to
	objects.

	Raises:
		TypeError: The value (or something inside it) has no JSON form.
	"""
	if value is None or isinstance(value, str | bool | int | float):
		return value
	if isinstance(value, Mapping):
		return {str(key): to_json_value(item) for key, item in value.items()}
	if isinstance(value, list | tuple):
		return [to_json_value(item) for item in value]
	if isinstance(value, set | frozenset):
		return [to_json_value(item) for item in sorted(value, key=repr)]
	if isinstance(value, dt.datetime | dt.date | dt.time):
		return value.isoformat()
	if isinstance(value, uuid.UUID):
		return str(value)
	if isinstance(value, Decimal):
		return int(value) if value == value.to_integral_value() else float(value)
	if isinstance(value, enum.Enum):
		return to_json_value(value.value)
	if dataclasses.is_dataclass(value) and not isinstance(value, type):
		return to_json_value(dataclasses.asdict(value))
	raise TypeError(f"{type(value).__name__} has no JSON form")


def build_context(
	*,
	input: Any,
	steps: Mapping[str, Mapping[str, Any]],
	run: Mapping[str, Any],
	item: Any = _Unset.UNSET,
	index: int | None | Literal[_Unset.UNSET] = _Unset.UNSET,
	secrets_names: Iterable[str] = (),
	extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
	"""Shape the context expressions are evaluated against.

	``input`` and step outputs are used as they are and must already be JSON; ``run`` and
	``extra`` pass through :func:`to_json_value`, so datetimes and UUIDs are fine there.

	Args:
		input: The workflow run's input.
		steps: Finished steps by node id; each a mapping with ``output`` and ``status``
			(missing ones read as null). Other keys are kept.
		run: Run metadata (ids, start time, attempt).
		item: The current element inside a map or loop; left out of the context when not given,
			so ``$item`` outside a loop is an error rather than a silent null.
		index: The current element's position; left out when not given.
		secrets_names: Names of the secrets the workflow may reference.
		extra: More top-level keys (each also a variable); may not replace a standard key.

	Returns:
		A new context dict.

	Raises:
		ValueError: ``extra`` uses a standard key.
		TypeError: A step is not a mapping, or ``run``/``extra`` hold values with no JSON form.
	"""
	shaped_steps: dict[str, dict[str, Any]] = {}
	for node_id, step in steps.items():
		if not isinstance(step, Mapping):
			raise TypeError(
				f"step {node_id!r} must be a mapping with 'output' and 'status', not {type(step).__name__}"
			)
		shaped_steps[node_id] = {"output": None, "status": None, **step}
	context: dict[str, Any] = {
		"input": input,
		"steps": shaped_steps,
		"run": to_json_value(run),
		"secrets": secret_markers(secrets_names),
	}
	if item is not _Unset.UNSET:
		context["item"] = item
	if index is not _Unset.UNSET:
		context["index"] = index
	if extra:
		clashes = sorted(STANDARD_KEYS.intersection(extra))
		if clashes:
			raise ValueError(f"extra context keys may not replace standard ones: {', '.join(clashes)}")
		context.update(to_json_value(extra))
	return context
