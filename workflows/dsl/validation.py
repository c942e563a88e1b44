"""Validate a definition document: every problem at once, each with a pointer and a hint.

:func:`validate_definition` is the single entry point. It never raises for any input
(only a :class:`~workflows.dsl.references.ReferenceResolver` that fails can make it raise)
and reports, in document order:

1. problems that stop validation early: not plain JSON, nested deeper than
   ``max_json_depth``, not an object, larger than ``max_document_bytes``;
2. shape errors from the Pydantic models (:func:`workflows.dsl.errors.errors_from_pydantic`);
3. graph rules, on whatever is well-formed (:mod:`workflows.dsl.graph`);
4. expressions and templates that do not compile;
5. with a resolver: connector actions, workflows, roles and users that do not exist, and
   task inputs that disagree with the action's input schema.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.validators import validator_for
from pydantic import ValidationError

from workflows.dsl.errors import (
	DefinitionError,
	PointerPart,
	errors_from_pydantic,
	json_kind,
	pointer,
	pointer_parts,
)
from workflows.dsl.graph import GraphLevel, RawNode, build_view, check_graph
from workflows.dsl.limits import LIMITS
from workflows.dsl.references import ReferenceResolver
from workflows.dsl.schema import ROLES, Definition, looks_like_iso_duration, looks_like_timestamp
from workflows.expressions import (
	ExpressionError,
	ExpressionSandboxError,
	compile_expression,
	compile_template,
)
from workflows.expressions.scanner import Embedded, ScanError, split_template

__all__ = ["ValidationResult", "validate_definition"]

_JQ_HINT = "check the jq syntax (https://jqlang.org/manual/); write it bare or as ${ ... }"

_EXPRESSION_FIELDS: dict[str, tuple[str, ...]] = {
	"map": ("items",),
	"loop": ("condition",),
	"wait_for_event": ("correlation",),
}
_TEMPLATE_FIELDS: dict[str, tuple[tuple[str, ...], ...]] = {
	"task": (("input",), ("output",), ("compensation", "input")),
	"map": (("result",),),
	"approval": (("instructions",),),
	"sub_workflow": (("input",),),
	"set": (("values",),),
	"fail": (("message",),),
	"end": (("output",),),
}


@dataclass(frozen=True, slots=True)
class ValidationResult:
	"""The outcome of :func:`validate_definition`.

	Attributes:
		definition: The validated, frozen definition; None whenever there are errors.
		errors: Every problem found, in document order.
	"""

	definition: Definition | None
	errors: list[DefinitionError]

	@property
	def ok(self) -> bool:
		"""Whether the definition is valid."""
		return not self.errors

	def to_dict(self) -> dict[str, Any]:
		"""The result as a JSON-ready mapping (without the definition)."""
		return {"ok": self.ok, "errors": [error.to_dict() for error in self.errors]}


def validate_definition(data: Any, *, references: ReferenceResolver | None = None) -> ValidationResult:
	"""Validate a definition document and report every problem at once.

	Args:
		data: The parsed document (e.g. from :func:`workflows.dsl.io.load_document`); any
			value is accepted and judged.
		references: Answers whether connector actions, workflows, roles and users exist;
			without it references are not checked.

	Returns:
		The result: the frozen :class:`Definition` when valid, else the errors.

	Raises:
		Exception: Only what ``references`` raises; never anything for the document itself.
	"""
	try:
		fatal = _check_raw(data)
	except Exception as exc:  # the promise is a result for any input
		fatal = _internal_error("reading the document", exc)
	if fatal is not None:
		return ValidationResult(None, [fatal])
	definition: Definition | None = None
	errors: list[DefinitionError] = []
	shape_error: ValidationError | None = None
	try:
		definition = Definition.model_validate(data)
	except ValidationError as exc:
		shape_error = exc
	except Exception as exc:  # the promise is a result for any input
		errors.append(_internal_error("checking the shape", exc))
	if shape_error is not None:
		errors += _guarded("reporting shape errors", errors_from_pydantic, shape_error, data)
	try:
		view = build_view(data)
	except Exception as exc:  # the promise is a result for any input
		errors.append(_internal_error("reading the graph", exc))
		view = None
	if view is not None:
		# Each phase on its own: a bug in one must not hide what the others find.
		errors += _guarded("checking the graph", check_graph, view)
		errors += _guarded("checking expressions", _check_expressions, data, view)
		if references is not None:
			errors += _check_references(view, references)
	errors = _in_document_order(errors)
	return ValidationResult(definition if not errors else None, errors)


def _guarded(what: str, check: Callable[..., Iterable[DefinitionError]], *args: Any) -> list[DefinitionError]:
	try:
		return list(check(*args))
	except Exception as exc:  # the promise is a result for any input
		return [_internal_error(what, exc)]


def _internal_error(what: str, exc: Exception) -> DefinitionError:
	return DefinitionError(
		"",
		"internal_error",
		f"validation failed while {what} ({type(exc).__name__}: {exc})",
		"this is a bug in the validator, or a service it needs is down; please report it with the document",
	)


def _in_document_order(errors: list[DefinitionError]) -> list[DefinitionError]:
	unique = list(dict.fromkeys(errors))

	def key(error: DefinitionError) -> list[tuple[int, int, str]]:
		return [
			(0, int(part), "") if part.isascii() and part.isdigit() else (1, 0, part)
			for part in pointer_parts(error.pointer)
		]

	return sorted(unique, key=key)


def _check_raw(data: Any) -> DefinitionError | None:
	"""The first problem that makes further validation pointless or unsafe, if any."""
	stack: list[tuple[Any, tuple[PointerPart, ...]]] = [(data, ())]
	while stack:
		value, parts = stack.pop()
		if len(parts) > LIMITS.max_json_depth:
			return DefinitionError(
				pointer(parts),
				"limit_exceeded",
				f"the document is nested more than {LIMITS.max_json_depth} levels deep (max_json_depth)",
				"flatten the data",
			)
		if isinstance(value, dict):
			for key, item in value.items():
				if not isinstance(key, str):
					return DefinitionError(
						pointer(parts), "not_json", f"object key {key!r} is not a string", "use string keys"
					)
				stack.append((item, (*parts, key)))
		elif isinstance(value, list):
			stack.extend((item, (*parts, index)) for index, item in enumerate(value))
		elif isinstance(value, float) and not math.isfinite(value):
			return DefinitionError(
				pointer(parts), "not_json", f"{value} is not a JSON number", "use a finite number"
			)
		elif value is not None and not isinstance(value, str | int | float | bool):
			return DefinitionError(
				pointer(parts), "not_json", f"{json_kind(value)} is not a JSON value", "use JSON values only"
			)
	if not isinstance(data, dict):
		return DefinitionError(
			"",
			"not_an_object",
			f"a definition is a JSON object, not {json_kind(data)}",
			'start from {"schema_version": "1.0", "nodes": [...], "edges": [...]}',
		)
	size = len(json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode())
	if size > LIMITS.max_document_bytes:
		return DefinitionError(
			"",
			"limit_exceeded",
			f"the document is {size:,} bytes; the limit is {LIMITS.max_document_bytes:,} (max_document_bytes)",
			"move large constants out of the definition, or split it into sub-workflows",
		)
	return None


def _lookup(config: dict[str, Any], path: tuple[str, ...]) -> tuple[bool, Any]:
	value: Any = config
	for part in path:
		if not isinstance(value, dict) or part not in value:
			return False, None
		value = value[part]
	return True, value


def _check_expressions(data: dict[str, Any], top: GraphLevel) -> Iterator[DefinitionError]:
	outputs = data.get("outputs")
	if isinstance(outputs, dict):
		for name, value in outputs.items():
			yield from _template_errors(value, ("outputs", name), "")
	for level in top.levels():
		for node in level.nodes:
			yield from _node_expressions(node)
		for edge in level.edges:
			if isinstance(edge.condition, str):
				context = f"edge {edge.source} -> {edge.target}: " if edge.source and edge.target else ""
				yield from _expression_errors(edge.condition, (*edge.parts, "condition"), context)


def _node_expressions(node: RawNode) -> Iterator[DefinitionError]:
	context = f"node {node.id!r}: " if node.id is not None else ""
	config = node.config
	sites: list[tuple[tuple[PointerPart, ...], str]] = []
	for field in _EXPRESSION_FIELDS.get(node.type or "", ()):
		value = config.get(field)
		if isinstance(value, str):
			sites.append(((field,), value))
	if node.type == "switch" and isinstance(config.get("cases"), list):
		for index, case in enumerate(config["cases"]):
			if isinstance(case, dict) and isinstance(case.get("condition"), str):
				sites.append((("cases", index, "condition"), case["condition"]))
	if node.type == "wait":
		duration, until = config.get("duration"), config.get("until")
		if isinstance(duration, str) and not looks_like_iso_duration(duration):
			sites.append((("duration",), duration))
		if isinstance(until, str) and not looks_like_timestamp(until):
			sites.append((("until",), until))
	for parts, source in sites:
		yield from _expression_errors(source, (*node.parts, "config", *parts), context)
	for path in _TEMPLATE_FIELDS.get(node.type or "", ()):
		found, value = _lookup(config, path)
		if found and value is not None:
			yield from _template_errors(value, (*node.parts, "config", *path), context)


def _expression_errors(
	source: str, parts: tuple[PointerPart, ...], context: str
) -> Iterator[DefinitionError]:
	# Empty and over-long expressions are the models' errors; compiling them adds nothing.
	if not source.strip() or len(source) > LIMITS.max_expression_length:
		return
	try:
		compile_expression(source)
	except ExpressionSandboxError as err:
		yield _unchecked(pointer(parts), context, err)
	except ExpressionError as err:
		yield DefinitionError(
			pointer(parts),
			"invalid_expression",
			f"{context}{source!r} is not a valid expression: {_message(err)}",
			_JQ_HINT,
		)


def _template_errors(value: Any, parts: tuple[PointerPart, ...], context: str) -> Iterator[DefinitionError]:
	too_long = list(_long_embedded_expressions(value, parts, context))
	if too_long:
		yield from too_long
		return
	try:
		compile_template(value)
	except ExpressionError as err:
		where = pointer(parts) + str(getattr(err, "pointer", "") or "")
		if isinstance(err, ExpressionSandboxError):
			yield _unchecked(where, context, err)
			return
		source = getattr(err, "source", None)
		what = f"the expression {source!r}" if isinstance(source, str) else "an embedded ${ } expression"
		yield DefinitionError(
			where, "invalid_template", f"{context}{what} is not valid: {_message(err)}", _JQ_HINT
		)


def _unchecked(where: str, context: str, err: ExpressionError) -> DefinitionError:
	# The expression may be fine: the checker itself was unavailable, so say so rather than blame it.
	return DefinitionError(
		where,
		"expression_unchecked",
		f"{context}the expression could not be checked: {_message(err)}",
		"validate again in a moment",
	)


def _message(err: ExpressionError) -> str:
	return str(getattr(err, "message", "") or err)


def _long_embedded_expressions(
	value: Any, parts: tuple[PointerPart, ...], context: str
) -> Iterator[DefinitionError]:
	limit = LIMITS.max_expression_length
	stack: list[tuple[Any, tuple[PointerPart, ...]]] = [(value, parts)]
	while stack:
		item, where = stack.pop()
		if isinstance(item, dict):
			stack.extend((child, (*where, key)) for key, child in item.items())
		elif isinstance(item, list):
			stack.extend((child, (*where, index)) for index, child in enumerate(item))
		elif isinstance(item, str) and len(item) > limit:
			try:
				pieces = split_template(item)
			except ScanError:
				continue  # compiling the template reports it
			longest = max((len(piece.source) for piece in pieces if isinstance(piece, Embedded)), default=0)
			if longest > limit:
				yield DefinitionError(
					pointer(where),
					"limit_exceeded",
					f"{context}an embedded expression is {longest} characters long; the limit is {limit} "
					"(max_expression_length)",
					"shorten the expression, or compute parts of it in earlier set nodes",
				)


def _has_expression(value: Any) -> bool:
	if isinstance(value, str):
		return "${" in value
	if isinstance(value, dict):
		return any(_has_expression(item) for item in value.values())
	if isinstance(value, list):
		return any(_has_expression(item) for item in value)
	return False


def _check_references(top: GraphLevel, references: ReferenceResolver) -> list[DefinitionError]:
	errors: list[DefinitionError] = []
	for level in top.levels():
		for node in level.nodes:
			if node.type == "task":
				errors += _check_action(node, (), references)
				if isinstance(node.config.get("compensation"), dict):
					errors += _check_action(node, ("compensation",), references)
			elif node.type == "sub_workflow":
				errors += _check_workflow(node, references)
			elif node.type == "approval":
				errors += _check_people(node, (), references)
				if isinstance(node.config.get("escalation"), dict):
					errors += _check_people(node, ("escalation",), references)
	return errors


def _check_action(
	node: RawNode, prefix: tuple[str, ...], references: ReferenceResolver
) -> Iterator[DefinitionError]:
	config = _lookup(node.config, prefix)[1]
	connector, action = config.get("connector"), config.get("action")
	if not (isinstance(connector, str) and connector and isinstance(action, str) and action):
		return
	info = references.connector_action(connector, action)
	if info is None:
		yield DefinitionError(
			node.at("config", *prefix, "action"),
			"unknown_action",
			f"node {node.id!r}: connector action '{connector}.{action}' is not installed",
			"pick an installed connector and action, or install the connector",
		)
		return
	if isinstance(info.input_schema, dict) and "input" in config:
		yield from _check_input(
			node,
			config["input"],
			info.input_schema,
			(*node.parts, "config", *prefix, "input"),
			f"{connector}.{action}",
		)


def _check_input(
	node: RawNode, value: Any, schema: dict[str, Any], parts: tuple[PointerPart, ...], action: str
) -> Iterator[DefinitionError]:
	"""Compare a task's static input mapping with the action's input schema.

	Values holding ``${ }`` are known only at run time and skipped; literal values are
	checked with jsonschema. A broken action schema is the connector's problem, not the
	definition's, so it is ignored.
	"""
	if not isinstance(value, dict):
		if not _has_expression(value):
			yield from _schema_errors(node, value, schema, schema, parts, action)
		return
	required = schema.get("required")
	for key in required if isinstance(required, list) else []:
		if isinstance(key, str) and key not in value:
			yield DefinitionError(
				pointer(parts),
				"missing_input",
				f"node {node.id!r}: {action} requires the input {key!r}",
				f"add {key!r} to the input",
			)
	properties = schema.get("properties")
	properties = properties if isinstance(properties, dict) else {}
	closed = schema.get("additionalProperties") is False and "patternProperties" not in schema
	for key, item in value.items():
		if key not in properties:
			if closed:
				close = difflib.get_close_matches(key, list(properties), n=1)
				yield DefinitionError(
					pointer((*parts, key)),
					"unknown_input",
					f"node {node.id!r}: {action} has no input {key!r}",
					(f"did you mean {close[0]!r}? " if close else "")
					+ f"inputs of {action}: {', '.join(sorted(properties)) or 'none'}",
				)
			continue
		if not _has_expression(item):
			yield from _schema_errors(node, item, properties[key], schema, (*parts, key), action)


def _schema_errors(
	node: RawNode,
	value: Any,
	subschema: Any,
	root: dict[str, Any],
	parts: tuple[PointerPart, ...],
	action: str,
) -> Iterator[DefinitionError]:
	try:
		validator = validator_for(root, default=Draft202012Validator)(root).evolve(schema=subschema)
		problems = sorted(validator.iter_errors(value), key=lambda problem: list(map(str, problem.path)))
	except Exception:  # a broken action schema is the connector's bug, not the definition's
		return
	for problem in problems:
		yield DefinitionError(
			pointer((*parts, *problem.path)),
			"invalid_input",
			f"node {node.id!r}: input for {action} is not valid: {problem.message}",
			"change the value to match the action's input schema, or compute it with ${ }",
		)


def _check_workflow(node: RawNode, references: ReferenceResolver) -> Iterator[DefinitionError]:
	slug = node.config.get("workflow")
	version = node.config.get("version", "latest")
	valid_version = version == "latest" or (
		isinstance(version, int) and not isinstance(version, bool) and version >= 1
	)
	if not isinstance(slug, str) or not slug or not valid_version:
		return
	if references.workflow_exists(slug, version):
		return
	if version != "latest" and references.workflow_exists(slug, "latest"):
		yield DefinitionError(
			node.at("config", "version"),
			"unknown_workflow_version",
			f"node {node.id!r}: workflow {slug!r} has no published version {version}",
			"use a published version number, or 'latest'",
		)
	else:
		yield DefinitionError(
			node.at("config", "workflow"),
			"unknown_workflow",
			f"node {node.id!r}: there is no published workflow {slug!r}",
			"publish that workflow first, or fix the slug",
		)


def _check_people(
	node: RawNode, prefix: tuple[str, ...], references: ReferenceResolver
) -> Iterator[DefinitionError]:
	config = _lookup(node.config, prefix)[1]
	role_field, users_field = ("to_role", "to_assignees") if prefix else ("role", "assignees")
	role = config.get(role_field)
	if isinstance(role, str) and role in ROLES and not references.role_exists(role):
		yield DefinitionError(
			node.at("config", *prefix, role_field),
			"unknown_role",
			f"node {node.id!r}: role {role!r} cannot be assigned approvals here",
			f"use one of: {', '.join(ROLES)}",
		)
	users = config.get(users_field)
	for index, username in enumerate(users if isinstance(users, list) else []):
		if isinstance(username, str) and username and not references.user_exists(username):
			yield DefinitionError(
				node.at("config", *prefix, users_field, index),
				"unknown_user",
				f"node {node.id!r}: there is no member {username!r}",
				"use the username of a member of this workspace",
			)
