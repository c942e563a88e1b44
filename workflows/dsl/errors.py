"""Definition errors, and the one helper that turns a Pydantic error into them.

Every problem found in a definition is a :class:`DefinitionError`: where (an RFC 6901 JSON
pointer into the submitted document), a stable code, what is wrong and how to fix it.
:func:`errors_from_pydantic` is the only place Pydantic's error shape is read, so the
API, the designer and the CLI all see the same pointers, codes and wording.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from workflows.dsl.schema import NODE_MODELS, NODE_TYPES, Definition

__all__ = [
	"DefinitionError",
	"errors_from_pydantic",
	"json_kind",
	"pointer",
	"pointer_parts",
]

PointerPart = str | int


@dataclass(frozen=True, slots=True)
class DefinitionError:
	"""One problem with a definition.

	Attributes:
		pointer: RFC 6901 JSON pointer into the submitted document, e.g.
			``/nodes/3/config/retry/max_attempts``; ``""`` is the whole document.
		code: Stable snake_case identifier of the kind of problem, e.g. ``unknown_node_type``.
		message: What is wrong, naming the node id where there is one.
		hint: How to fix it.
	"""

	pointer: str
	code: str
	message: str
	hint: str = ""

	def to_dict(self) -> dict[str, str]:
		"""The error as a JSON-ready mapping."""
		return {"pointer": self.pointer, "code": self.code, "message": self.message, "hint": self.hint}


def pointer(parts: Iterable[PointerPart]) -> str:
	"""An RFC 6901 JSON pointer from path segments: ``["nodes", 3, "id"]`` -> ``/nodes/3/id``."""
	return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


def pointer_parts(text: str) -> list[str]:
	"""The unescaped segments of a JSON pointer (the inverse of :func:`pointer` for strings)."""
	if not text:
		return []
	return [part.replace("~1", "/").replace("~0", "~") for part in text.lstrip("/").split("/")]


def json_kind(value: object) -> str:
	"""The JSON type of a value with its article, for messages: ``an array``, ``null``."""
	if value is None:
		return "null"
	if isinstance(value, bool):
		return "a boolean"
	if isinstance(value, int | float):
		return "a number"
	if isinstance(value, str):
		return "a string"
	if isinstance(value, list | tuple):
		return "an array"
	if isinstance(value, dict):
		return "an object"
	return f"a {type(value).__name__}"


_EXPECTED: dict[str, str] = {
	"string_type": "a string",
	"int_type": "an integer",
	"float_type": "a number",
	"bool_type": "true or false",
	"list_type": "an array",
	"dict_type": "an object",
	"model_type": "an object",
	"model_attributes_type": "an object",
	"none_required": "null",
}

_BOUNDS: dict[str, str] = {
	"greater_than_equal": "at least {ge}",
	"greater_than": "more than {gt}",
	"less_than_equal": "at most {le}",
	"less_than": "less than {lt}",
}

_KNOWN_TYPES = ", ".join(sorted(NODE_TYPES))


def _child(value: Any, part: PointerPart) -> tuple[bool, Any]:
	"""Whether ``value`` has ``part`` (an object key or an array index), and the child."""
	if isinstance(value, dict) and part in value:
		return True, value[part]
	if isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value):
		return True, value[part]
	return False, None


@dataclass(slots=True)
class _Located:
	parts: list[PointerPart]
	value: Any
	found: bool
	union_member: bool


def _locate(loc: Sequence[PointerPart], data: Any) -> _Located:
	"""Follow a Pydantic ``loc`` through the submitted data, dropping union member tags.

	Pydantic puts the discriminator value of a node (``("nodes", 0, "task", "config")``) and
	the member of a plain union (``("version", "int")``) in ``loc``; they are not in the
	document, so they are skipped here.
	"""
	parts: list[PointerPart] = []
	value = data
	found = True
	union_member = False
	at_node = False
	for index, segment in enumerate(loc):
		is_last = index == len(loc) - 1
		if at_node and isinstance(value, dict) and segment == value.get("type"):
			at_node = False
			continue
		at_node = bool(parts) and parts[-1] == "nodes" and isinstance(segment, int)
		found_child, child = _child(value, segment)
		if found_child:
			parts.append(segment)
			value = child
		elif isinstance(value, dict) and is_last:
			parts.append(segment)
			value = None
			found = False
		else:
			union_member = True
	return _Located(parts, value, found, union_member)


def _unwrap(annotation: Any) -> list[Any]:
	"""The alternatives of an annotation, with ``Annotated`` and ``None`` removed."""
	while typing.get_origin(annotation) is typing.Annotated:
		annotation = typing.get_args(annotation)[0]
	if typing.get_origin(annotation) in (typing.Union, types.UnionType):
		result: list[Any] = []
		for arg in typing.get_args(annotation):
			if arg is not type(None):
				result.extend(_unwrap(arg))
		return result
	return [annotation]


def _model_of(annotation: Any, value: Any) -> type[BaseModel] | None:
	models = [arg for arg in _unwrap(annotation) if isinstance(arg, type) and issubclass(arg, BaseModel)]
	if len(models) == 1:
		return models[0]
	node_type = value.get("type") if isinstance(value, dict) else None
	return NODE_MODELS.get(node_type) if models and isinstance(node_type, str) else None


def _item_of(annotation: Any) -> Any:
	for arg in _unwrap(annotation):
		origin = typing.get_origin(arg)
		if origin is list:
			return typing.get_args(arg)[0]
		if origin is dict:
			return typing.get_args(arg)[1]
	return None


def _model_at(parts: Sequence[PointerPart], data: Any) -> type[BaseModel] | None:
	"""The model that describes the object at ``parts`` in the document, if there is one."""
	annotation: Any = Definition
	value = data
	for part in parts:
		model = _model_of(annotation, value)
		if model is not None:
			field = model.model_fields.get(str(part))
			if field is None:
				return None
			annotation = field.annotation
		else:
			annotation = _item_of(annotation)
			if annotation is None:
				return None
		value = _child(value, part)[1]
	return _model_of(annotation, value)


def _describe_model(model: type[BaseModel]) -> str:
	return re.sub(r"(?<!^)(?=[A-Z])", " ", model.__name__).lower()


def _node_context(parts: Sequence[PointerPart], data: Any) -> str:
	"""``node 'fetch': `` for an error inside a node, ``edge a -> b: `` inside an edge."""
	value = data
	label = ""
	for index, part in enumerate(parts):
		found, value = _child(value, part)
		if not found:
			break
		parent = parts[index - 1] if index else None
		if parent == "nodes" and isinstance(part, int) and isinstance(value, dict):
			node_id = value.get("id")
			own_id = list(parts[index + 1 :]) == ["id"]
			label = f"node {node_id!r}: " if isinstance(node_id, str) and not own_id else ""
		elif parent == "edges" and isinstance(part, int) and isinstance(value, dict):
			source, target = value.get("source"), value.get("target")
			ok = isinstance(source, str) and isinstance(target, str)
			label = f"edge {source} -> {target}: " if ok else ""
	return label


def _field_name(parts: Sequence[PointerPart]) -> str:
	"""``'retry'`` for a field, ``item 2 of 'nodes'`` for an array item."""
	if not parts:
		return "the document"
	if isinstance(parts[-1], int):
		return f"item {parts[-1]} of {_field_name(parts[:-1])}"
	return repr(parts[-1])


def _translate(error: Any, located: _Located, data: Any) -> tuple[str, str, str]:
	"""Code, message and hint for one Pydantic error (the node context is added by the caller)."""
	kind: str = error["type"]
	ctx: dict[str, Any] = error.get("ctx") or {}
	parts = located.parts
	field = _field_name(parts)
	if "message" in ctx:
		return kind, str(ctx["message"]), str(ctx.get("hint", ""))
	if kind == "missing":
		model = _model_at(parts[:-1], data)
		description = ""
		if model is not None and str(parts[-1]) in model.model_fields:
			description = (model.model_fields[str(parts[-1])].description or "").replace("``", "'")
		return (
			"required",
			f"{field} is required",
			f"add {field}" + (f": {description}" if description else ""),
		)
	if kind == "extra_forbidden":
		model = _model_at(parts[:-1], data)
		allowed = sorted(model.model_fields) if model is not None else []
		where = f" of a {_describe_model(model)}" if model is not None else ""
		close = difflib.get_close_matches(str(parts[-1]), allowed, n=1)
		hint = f"did you mean {close[0]!r}? " if close else ""
		hint += f"remove {field}" + (f"; allowed here: {', '.join(allowed)}" if allowed else "")
		return "unknown_field", f"{field} is not a field{where}", hint
	if kind == "union_tag_invalid":
		tag = str(ctx.get("tag", ""))
		close = difflib.get_close_matches(tag, NODE_TYPES, n=1)
		hint = (f"did you mean {close[0]!r}? " if close else "") + f"set type to one of: {_KNOWN_TYPES}"
		return "unknown_node_type", f"unknown node type {tag!r}; known types: {_KNOWN_TYPES}", hint
	if kind == "union_tag_not_found":
		return "missing_node_type", f"the node has no type; known types: {_KNOWN_TYPES}", "add 'type'"
	if kind in _EXPECTED:
		expected = _EXPECTED[kind]
		return (
			"invalid_type",
			f"{field} should be {expected}, not {json_kind(located.value)}",
			f"use {expected}",
		)
	if kind == "literal_error":
		expected = str(ctx.get("expected", ""))
		return "invalid_value", f"{located.value!r} is not allowed for {field}", f"use {expected}"
	if kind in _BOUNDS:
		bound = _BOUNDS[kind].format(**ctx)
		return "out_of_range", f"{field} is {located.value!r}; it must be {bound}", f"use a value {bound}"
	if kind == "too_short":
		minimum = ctx.get("min_length")
		return "too_short", f"{field} needs at least {minimum} item(s)", f"add at least {minimum} item(s)"
	return kind, str(error.get("msg", "invalid value")), ""


def _merge_union(errors: list[tuple[str, _Located, Any]]) -> tuple[str, str, str] | None:
	"""One ``expected X or Y`` error for a value that matched no member of a union."""
	expected: list[str] = []
	for kind, _located, ctx in errors:
		if kind in _EXPECTED:
			expected.append(_EXPECTED[kind])
		elif kind == "literal_error":
			expected.append(str(ctx.get("expected", "")))
		else:
			return None
	located = errors[0][1]
	field = _field_name(located.parts)
	choices = " or ".join(dict.fromkeys(expected))
	return "invalid_type", f"{field} should be {choices}, not {json_kind(located.value)}", f"use {choices}"


def errors_from_pydantic(exc: ValidationError, data: Any) -> list[DefinitionError]:
	"""Translate a Pydantic validation error on a definition into definition errors.

	Pointers refer to the submitted document (union member tags are dropped), discriminator
	errors become ``unknown node type 'x'; known types: ...``, and the errors of one value
	that matched no member of a union are merged into one.

	Args:
		exc: The error raised by ``Definition.model_validate(data)``.
		data: The document that was validated.

	Returns:
		The errors in Pydantic's order.
	"""
	grouped: dict[str, list[tuple[Any, _Located]]] = {}
	order: list[str] = []
	for error in exc.errors():
		located = _locate(error["loc"], data)
		ctx = error.get("ctx") or {}
		if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
			located.parts.append("type")
		if isinstance(ctx.get("field"), str) and ctx["field"]:
			located.parts.extend(
				int(part) if part.isascii() and part.isdigit() else part
				for part in pointer_parts(ctx["field"])
			)
		key = pointer(located.parts)
		if key not in grouped:
			order.append(key)
		grouped.setdefault(key, []).append((error, located))

	result: list[DefinitionError] = []
	for key in order:
		items = grouped[key]
		context = _node_context(items[0][1].parts, data)
		union = [
			(error["type"], located, error.get("ctx") or {})
			for error, located in items
			if located.union_member
		]
		merged = _merge_union(union) if len(union) > 1 else None
		if merged is not None:
			code, message, hint = merged
			result.append(DefinitionError(key, code, context + message, hint))
			items = [(error, located) for error, located in items if not located.union_member]
		for error, located in items:
			code, message, hint = _translate(error, located, data)
			result.append(DefinitionError(key, code, context + message, hint))
	return result
