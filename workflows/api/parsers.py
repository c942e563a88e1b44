"""A JSON parser that refuses what the database cannot store, with a message saying so."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from workflows.errors import find_unstorable

__all__ = ["StrictJSONParser", "find_unstorable"]


class StrictJSONParser(JSONParser):
	"""DRF's JSON parser, plus: no NUL characters or unpaired surrogates anywhere (they cannot be stored)."""

	def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
		data = super().parse(stream, media_type, parser_context)
		where = find_unstorable(data)
		if where is not None:
			raise ParseError(
				f"The body contains a NUL character (\\u0000) or an unpaired surrogate (\\ud800 to \\udfff) "
				f"at {where or '/'}; remove it."
			)
		return data
