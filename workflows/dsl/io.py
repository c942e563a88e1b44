"""Export and import definition documents as JSON or YAML, and their content checksum.

Export followed by import is the identity for any JSON document: key order is kept, and
YAML strings that a reader could take for something else (``on``, ``yes``, ``null``,
``1.0``, ``007``, ``2024-01-01``, ``1e3``) are quoted on the way out.

YAML is read with a restricted safe loader that only builds JSON values: mapping keys are
always strings (``on:`` is the key ``"on"``, not ``true``), timestamps stay strings, duplicate
keys, aliases (``*name``) and tags for other types (``!!binary``, ``!!set``) are refused,
and so are ``.inf`` and ``.nan``. Refusing aliases also rules out "billion laughs" documents
that are tiny as YAML and enormous as JSON.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any, Literal

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from workflows.dsl.errors import json_kind
from workflows.dsl.limits import LIMITS

__all__ = ["DocumentError", "DocumentFormat", "checksum", "dump_json", "dump_yaml", "load_document"]

DocumentFormat = Literal["json", "yaml"]

MAX_TEXT_CHARS = 4 * LIMITS.max_document_bytes
"""Longest text :func:`load_document` reads; YAML may be larger than the JSON it holds."""


class DocumentError(ValueError):
	"""A document that cannot be read: bad syntax, or not a JSON object.

	Attributes:
		message: What is wrong.
		line: 1-based line of the problem, when known.
		column: 1-based column of the problem, when known.
	"""

	def __init__(self, message: str, *, line: int | None = None, column: int | None = None) -> None:
		self.message = message
		self.line = line
		self.column = column
		super().__init__(str(self))

	def __str__(self) -> str:
		if self.line is None:
			return self.message
		return f"line {self.line}, column {self.column}: {self.message}"

	def to_dict(self) -> dict[str, Any]:
		"""The error as a JSON-ready mapping."""
		return {"message": self.message, "line": self.line, "column": self.column}


def dump_json(doc: dict[str, Any]) -> str:
	"""The document as indented JSON (UTF-8 text, keys in their order, trailing newline).

	Raises:
		ValueError: The document holds NaN or infinity.
		TypeError: The document holds something that is not JSON.
	"""
	return json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


class _Dumper(yaml.SafeDumper):
	"""Safe dumper without anchors, quoting every string another reader could misread."""

	def ignore_aliases(self, data: Any) -> bool:
		return True


# YAML 1.2 readers take these for numbers while PyYAML's 1.1 rules do not: quote them too.
_Dumper.add_implicit_resolver(
	"tag:yaml.org,2002:float",
	re.compile(
		r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"
	),
	list("-+0123456789."),
)
_Dumper.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^0o[0-7]+$"), ["0"])


_OTHER_BREAKS = ("\r", "\x85", "\u2028", "\u2029")


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
	# Literal block style keeps multi-line templates readable; the emitter falls back to a
	# quoted style when the text cannot be a block scalar (trailing spaces, tabs, ...).
	# Line breaks other than \n are folded by readers of plain and single-quoted scalars,
	# so only double quotes (which escape them) keep them.
	if any(char in data for char in _OTHER_BREAKS):
		style: str | None = '"'
	elif "\n" in data.rstrip("\n"):
		style = "|"
	else:
		style = None
	return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _represent_str)


def dump_yaml(doc: dict[str, Any]) -> str:
	"""The document as block-style YAML that :func:`load_document` reads back unchanged.

	Raises:
		ValueError: The document holds NaN or infinity.
		yaml.representer.RepresenterError: The document holds something that is not JSON.
	"""
	_reject_non_finite(doc)
	return yaml.dump(
		doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100
	)


def _reject_non_finite(value: Any) -> None:
	stack = [value]
	while stack:
		item = stack.pop()
		if isinstance(item, dict):
			stack.extend(item.values())
		elif isinstance(item, list):
			stack.extend(item)
		elif isinstance(item, float) and not math.isfinite(item):
			raise ValueError(f"{item} is not a JSON number")


_DROPPED_RESOLVERS = {"tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value", "tag:yaml.org,2002:merge"}


class _Loader(yaml.SafeLoader):
	"""Safe loader that builds JSON values only (see the module docstring)."""

	yaml_constructors: dict[Any, Any] = {}  # PyYAML's class-level registry, emptied
	yaml_implicit_resolvers = {
		first: [(tag, regexp) for tag, regexp in resolvers if tag not in _DROPPED_RESOLVERS]
		for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
	}

	def compose_node(self, parent: Node | None, index: Any) -> Node | None:
		if self.check_event(yaml.AliasEvent):
			raise ComposerError(
				None,
				None,
				"aliases (*name) are not supported in workflow documents",
				self.peek_event().start_mark,
			)
		return super().compose_node(parent, index)


def _construct_mapping(loader: _Loader, node: Node) -> dict[str, Any]:
	assert isinstance(node, MappingNode)
	result: dict[str, Any] = {}
	for key_node, value_node in node.value:
		if not isinstance(key_node, ScalarNode):
			raise ConstructorError(None, None, "mapping keys must be strings", key_node.start_mark)
		key = key_node.value
		if key in result:
			raise ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
		result[key] = loader.construct_object(value_node, deep=True)
	return result


def _construct_sequence(loader: _Loader, node: Node) -> list[Any]:
	assert isinstance(node, SequenceNode)
	return [loader.construct_object(child, deep=True) for child in node.value]


def _construct_float(loader: _Loader, node: Node) -> float:
	assert isinstance(node, ScalarNode)
	value = yaml.SafeLoader.construct_yaml_float(loader, node)
	if not math.isfinite(value):
		raise ConstructorError(None, None, f"{node.value} is not a JSON number", node.start_mark)
	return value


def _construct_other(loader: _Loader, node: Node) -> Any:
	raise ConstructorError(None, None, f"the tag {node.tag} is not a JSON type", node.start_mark)


_Loader.add_constructor("tag:yaml.org,2002:null", yaml.SafeLoader.construct_yaml_null)
_Loader.add_constructor("tag:yaml.org,2002:bool", yaml.SafeLoader.construct_yaml_bool)
_Loader.add_constructor("tag:yaml.org,2002:int", yaml.SafeLoader.construct_yaml_int)
_Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)
_Loader.add_constructor("tag:yaml.org,2002:str", yaml.SafeLoader.construct_yaml_str)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_sequence)
_Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
_Loader.add_constructor(None, _construct_other)


class _NotJsonError(ValueError):
	"""Raised from the JSON parser's hooks, which do not know the position."""


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
	result: dict[str, Any] = {}
	for key, value in pairs:
		if key in result:
			raise _NotJsonError(f"duplicate key {key!r}")
		result[key] = value
	return result


def _json_constant(name: str) -> Any:
	raise _NotJsonError(f"{name} is not a JSON number")


def _load_json(text: str) -> Any:
	try:
		return json.loads(text, object_pairs_hook=_json_object, parse_constant=_json_constant)
	except _NotJsonError as err:
		raise DocumentError(str(err)) from None
	except json.JSONDecodeError as err:
		raise DocumentError(err.msg, line=err.lineno, column=err.colno) from None


def _load_yaml(text: str) -> Any:
	try:
		return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a restricted SafeLoader
	except yaml.YAMLError as err:
		# Marked errors (scanner, parser, composer, constructor) know the line; reader errors
		# (a control character in the text) only know the offset.
		mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
		parts = (getattr(err, "context", None), getattr(err, "problem", None))
		message = " ".join(part for part in parts if part) or f"invalid YAML: {err}"
		if mark is None:
			raise DocumentError(message) from None
		raise DocumentError(message, line=mark.line + 1, column=mark.column + 1) from None


def load_document(text: str, *, format: DocumentFormat | None = None) -> dict[str, Any]:
	"""Read a definition document from JSON or YAML text.

	Args:
		text: The document.
		format: ``json`` or ``yaml``; None sniffs it (JSON when the text starts with ``{`` or
			``[``, YAML otherwise).

	Returns:
		The document, a JSON object.

	Raises:
		DocumentError: Bad syntax (with line and column), not an object, or too long.
	"""
	if len(text) > MAX_TEXT_CHARS:
		raise DocumentError(f"the text is longer than {MAX_TEXT_CHARS:,} characters")
	text = text.removeprefix("\ufeff")
	if format is None:
		format = "json" if text.lstrip()[:1] in ("{", "[") else "yaml"
	try:
		value = _load_json(text) if format == "json" else _load_yaml(text)
	except RecursionError:
		raise DocumentError("the document is nested too deeply") from None
	if not isinstance(value, dict):
		kind = "empty" if value is None else json_kind(value)
		raise DocumentError(f"a workflow document must be an object, not {kind}")
	return value


def checksum(definition: dict[str, Any]) -> str:
	"""SHA-256 (hex) of the canonical JSON of a definition: sorted keys, compact separators.

	Two documents with the same content have the same checksum whatever their key order or
	formatting, so publishing identical content twice can be detected.
	"""
	canonical = json.dumps(
		definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
	)
	return hashlib.sha256(canonical.encode()).hexdigest()
