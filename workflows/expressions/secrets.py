"""Secrets by reference: expressions see markers, connectors see values, outputs see ``***``.

An evaluation context exposes ``$secrets`` as name → ``"secret://<name>"``. Expressions can
place a marker wherever a secret belongs (``"Bearer ${ $secrets.api_token }"``) but never
read the value, so no output, event or log line written from an expression result can hold
it. A connector calls :func:`resolve_secret_refs` on its finished input just before using
it, and :func:`redact` on anything it is about to store or log.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from workflows.expressions.errors import UnknownSecretError

__all__ = [
	"SECRET_SCHEME",
	"REDACTED",
	"find_secret_refs",
	"redact",
	"resolve_secret_refs",
	"secret_marker",
	"secret_markers",
]

SECRET_SCHEME: Final = "secret://"  # noqa: S105 - a URL scheme, not a password
REDACTED: Final = "***"

# A name may hold dots and dashes inside, never at the end, so "secret://token." in prose
# refers to "token".
_NAME = r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?"
_NAME_RE = re.compile(_NAME)
_MARKER_RE = re.compile(re.escape(SECRET_SCHEME) + f"({_NAME})")


def secret_marker(name: str) -> str:
	"""The marker standing for secret ``name``.

	Raises:
		ValueError: ``name`` is not a valid secret name (letters, digits, ``_``, and ``.`` or
			``-`` between them).
	"""
	if not _NAME_RE.fullmatch(name):
		raise ValueError(f"{name!r} is not a valid secret name")
	return SECRET_SCHEME + name


def secret_markers(names: Iterable[str]) -> dict[str, str]:
	"""The ``$secrets`` mapping for ``names``: each name → its marker."""
	return {name: secret_marker(name) for name in names}


def _walk_strings(value: Any, replace: Callable[[str], Any]) -> Any:
	if isinstance(value, str):
		return replace(value)
	if isinstance(value, Mapping):
		return {key: _walk_strings(item, replace) for key, item in value.items()}
	if isinstance(value, list | tuple):
		return [_walk_strings(item, replace) for item in value]
	return value


def find_secret_refs(value: Any) -> set[str]:
	"""The secret names referenced anywhere in a JSON value."""
	names: set[str] = set()

	def collect(text: str) -> str:
		names.update(_MARKER_RE.findall(text))
		return text

	_walk_strings(value, collect)
	return names


def resolve_secret_refs(value: Any, lookup: Callable[[str], str]) -> Any:
	"""Replace secret markers with the secrets' values, deep inside a JSON value.

	A string that is exactly one marker becomes the value; markers inside longer strings are
	substituted in place. Each secret is looked up once per call. Object keys are left alone.

	Args:
		value: A JSON value, typically a connector's evaluated input.
		lookup: Returns the value of a secret by name; raises ``KeyError`` when it is unknown.

	Returns:
		A new value with markers replaced; the input is not modified.

	Raises:
		UnknownSecretError: A marker names a secret ``lookup`` does not know.
	"""
	resolved: dict[str, str] = {}

	def secret(name: str) -> str:
		if name not in resolved:
			try:
				resolved[name] = lookup(name)
			except KeyError:
				raise UnknownSecretError(name) from None
		return resolved[name]

	def replace(text: str) -> str:
		if SECRET_SCHEME not in text:
			return text
		whole = _MARKER_RE.fullmatch(text)
		if whole is not None:
			return secret(whole.group(1))
		return _MARKER_RE.sub(lambda match: secret(match.group(1)), text)

	return _walk_strings(value, replace)


def redact(value: Any, secret_values: Iterable[str]) -> Any:
	"""Replace every occurrence of a secret value inside a JSON value with ``***``.

	Strings, object keys and numbers whose text contains a secret are covered, as is the
	JSON-escaped form of a secret (a response body that embeds it as JSON text). Empty
	secrets are ignored.

	Args:
		value: A JSON value about to be stored, sent as an event or logged.
		secret_values: The values to hide.

	Returns:
		A new value with the secrets replaced.
	"""
	needles: set[str] = set()
	for secret in secret_values:
		if secret:
			needles.add(secret)
			needles.add(json.dumps(secret, ensure_ascii=False)[1:-1])
			needles.add(json.dumps(secret)[1:-1])
	if not needles:
		return value
	# Longest first, so a secret that contains another is replaced whole.
	pattern = re.compile("|".join(re.escape(needle) for needle in sorted(needles, key=len, reverse=True)))

	def replace(text: str) -> str:
		return pattern.sub(REDACTED, text)

	def scrub(item: Any) -> Any:
		if isinstance(item, int | float) and not isinstance(item, bool) and pattern.search(json.dumps(item)):
			return REDACTED
		if isinstance(item, Mapping):
			return {
				(replace(key) if isinstance(key, str) else key): scrub(child) for key, child in item.items()
			}
		if isinstance(item, list | tuple):
			return [scrub(child) for child in item]
		if isinstance(item, str):
			return replace(item)
		return item

	return scrub(value)
