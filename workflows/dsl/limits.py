"""Size limits of a workflow definition: the one place they are set.

Limits keep a definition small enough to store, diff, render in the designer and evaluate
on every step without surprises. A document over a limit is refused with an error whose
code is ``limit_exceeded`` and whose message names the limit (for example
``max_nodes``), so a client can show which one was hit.

Document size and JSON nesting depth are checked first, on the raw document, and stop
validation: they protect the validator itself. The others are reported with every other
error.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["LIMITS", "Limits"]


@dataclass(frozen=True, slots=True)
class Limits:
	"""The limits a definition must stay within.

	Attributes:
		max_document_bytes: Size of the document serialised as compact UTF-8 JSON.
		max_nodes: Nodes in total, counting those inside loop and map bodies.
		max_edges: Edges in total, counting those inside loop and map bodies.
		max_body_depth: How deep loop and map bodies may nest (a body at the top level is
			depth 1).
		max_node_id_length: Characters in a node id (also enforced by the id pattern).
		max_expression_length: Characters in one jq expression, whether a whole field or
			one ``${ ... }`` inside a template string.
		max_name_length: Characters in a name, label or title.
		max_description_length: Characters in a node description.
		max_json_depth: Nesting of JSON arrays and objects anywhere in the document; guards
			the validator against pathological input.
	"""

	max_document_bytes: int = 2 * 1024 * 1024
	max_nodes: int = 2_000
	max_edges: int = 10_000
	max_body_depth: int = 5
	max_node_id_length: int = 64
	max_expression_length: int = 4_096
	max_name_length: int = 200
	max_description_length: int = 10_000
	max_json_depth: int = 128

	def as_dict(self) -> dict[str, int]:
		"""The limits as a plain mapping, e.g. for an API that publishes them."""
		return {f.name: getattr(self, f.name) for f in fields(self)}


LIMITS = Limits()
"""The limits in force."""
