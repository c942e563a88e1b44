"""A JSON parser that refuses what the database cannot store, with a message saying so."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

__all__ = ["StrictJSONParser", "find_nul"]


def find_nul(value: Any, pointer: str = "") -> str | None:
	"""The JSON pointer of the first string (or key) containing a NUL character, if any.

	PostgreSQL stores neither text nor JSON with U+0000, so such input is refused up front
	rather than failing deep inside a write.
	"""
	if isinstance(value, str):
		return pointer if "\x00" in value else None
	if isinstance(value, dict):
		for key, item in value.items():
			here = f"{pointer}/{str(key).replace('~', '~0').replace('/', '~1')}"
			if "\x00" in str(key):
				return here
			found = find_nul(item, here)
			if found is not None:
				return found
	if isinstance(value, list):
		for index, item in enumerate(value):
			found = find_nul(item, f"{pointer}/{index}")
			if found is not None:
				return found
	return None


class StrictJSONParser(JSONParser):
	"""DRF's JSON parser, plus: no NUL characters anywhere (they cannot be stored)."""

	def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
		data = super().parse(stream, media_type, parser_context)
		where = find_nul(data)
		if where is not None:
			raise ParseError(f"The body contains a NUL character (\\u0000) at {where or '/'}; remove it.")
		return data
