"""Tiny builders for definition documents: small inline workflows read like the graph they are."""

from __future__ import annotations

import copy
from typing import Any

Doc = dict[str, Any]


def node(node_id: str, node_type: str, config: dict[str, Any] | None = None, **fields: Any) -> Doc:
	"""Any node; ``config`` is left out when None."""
	result: Doc = {"id": node_id, "type": node_type, **fields}
	if config is not None:
		result["config"] = config
	return result


def start(node_id: str = "start") -> Doc:
	"""The start node."""
	return node(node_id, "start")


def end(node_id: str = "end", **config: Any) -> Doc:
	"""An end node."""
	return node(node_id, "end", config or None)


def fail(node_id: str = "fail", error_code: str = "failed", **config: Any) -> Doc:
	"""A fail node."""
	return node(node_id, "fail", {"error_code": error_code, **config})


def task(node_id: str, connector: str = "http", action: str = "request", **config: Any) -> Doc:
	"""A task node running ``connector.action``."""
	return node(node_id, "task", {"connector": connector, "action": action, **config})


def set_(node_id: str, values: Any = 1) -> Doc:
	"""A set (transform) node."""
	return node(node_id, "set", {"values": values})


def parallel(node_id: str) -> Doc:
	"""A fork."""
	return node(node_id, "parallel")


def join(node_id: str, **config: Any) -> Doc:
	"""A join."""
	return node(node_id, "join", config or None)


def switch(node_id: str, *cases: tuple[str, str]) -> Doc:
	"""A switch with ``(case_id, condition)`` cases."""
	return node(node_id, "switch", {"cases": [{"id": case_id, "condition": cond} for case_id, cond in cases]})


def body(nodes: list[Doc], edges: list[Doc] | None = None) -> Doc:
	"""A loop or map body."""
	return {"nodes": nodes, "edges": edges or []}


def loop(
	node_id: str, inner: Doc, condition: str = ".count < 3", max_iterations: int = 10, **config: Any
) -> Doc:
	"""A loop node around ``inner``."""
	return node(
		node_id, "loop", {"condition": condition, "max_iterations": max_iterations, "body": inner, **config}
	)


def map_(node_id: str, inner: Doc, items: str = ".input.items", **config: Any) -> Doc:
	"""A map node around ``inner``."""
	return node(node_id, "map", {"items": items, "body": inner, **config})


def wait(node_id: str, **config: Any) -> Doc:
	"""A wait node."""
	return node(node_id, "wait", config)


def wait_for_event(
	node_id: str, event_type: str = "order.paid", correlation: str = ".input.order_id", **config: Any
) -> Doc:
	"""A wait-for-event node."""
	return node(node_id, "wait_for_event", {"event_type": event_type, "correlation": correlation, **config})


def approval(node_id: str, **config: Any) -> Doc:
	"""An approval node (assigned to operators unless told otherwise)."""
	return node(node_id, "approval", {"role": "operator", **config} if "assignees" not in config else config)


def sub_workflow(node_id: str, workflow: str = "child", **config: Any) -> Doc:
	"""A sub-workflow node."""
	return node(node_id, "sub_workflow", {"workflow": workflow, **config})


def edge(source: str, target: str, handle: str | None = None, **fields: Any) -> Doc:
	"""An edge; ``handle`` is the source handle."""
	result: Doc = {"source": source, "target": target, **fields}
	if handle is not None:
		result["source_handle"] = handle
	return result


def chain(*ids: str) -> list[Doc]:
	"""Edges a -> b -> c ..."""
	return [edge(source, target) for source, target in zip(ids, ids[1:], strict=False)]


def definition(*nodes: Doc, edges: list[Doc] | None = None, **top: Any) -> Doc:
	"""A definition document; without ``edges`` the nodes are chained in order."""
	doc: Doc = {"schema_version": "1.0", "nodes": list(nodes)}
	doc["edges"] = edges if edges is not None else chain(*(item["id"] for item in nodes))
	doc.update(top)
	return copy.deepcopy(doc)


def linear(*middle: Doc) -> Doc:
	"""start -> middle... -> end."""
	return definition(start(), *middle, end())


EXAMPLE: Doc = {
	"schema_version": "1.0",
	"input_schema": {
		"type": "object",
		"required": ["order_id"],
		"properties": {"order_id": {"type": "string"}},
	},
	"nodes": [
		{"id": "start", "type": "start", "name": "Order received", "position": {"x": 0, "y": 0}},
		{
			"id": "charge",
			"type": "task",
			"name": "Charge card",
			"position": {"x": 240, "y": 0},
			"config": {
				"connector": "http",
				"action": "request",
				"connection": "payments-api",
				"input": {
					"method": "POST",
					"url": "https://pay.example.com/charges",
					"json": {"order": "${ .input.order_id }"},
				},
				"retry": {"max_attempts": 5, "initial_interval_seconds": 2},
				"timeout_seconds": 30,
				"compensation": {
					"connector": "http",
					"action": "request",
					"input": {"method": "POST", "url": "https://pay.example.com/refunds"},
				},
			},
		},
		{
			"id": "done",
			"type": "end",
			"position": {"x": 480, "y": 0},
			"config": {"output": {"charge": "${ .steps.charge.output }"}},
		},
		{
			"id": "declined",
			"type": "fail",
			"position": {"x": 480, "y": 120},
			"config": {"error_code": "payment_declined", "message": "Card declined for ${ .input.order_id }"},
		},
	],
	"edges": [
		{"source": "start", "target": "charge"},
		{"source": "charge", "target": "done"},
		{"source": "charge", "target": "declined", "source_handle": "error", "label": "declined"},
	],
	"outputs": {"charge_id": "${ .steps.charge.output.id }"},
	"defaults": {"timeout_seconds": 60, "priority": 7},
}
"""A small but realistic valid definition (also the README example)."""


def the_error(result: Any, code: str) -> Any:
	"""The one error with this code in a validation result (fails the test otherwise)."""
	matching = [error for error in result.errors if error.code == code]
	assert len(matching) == 1, f"expected one {code!r} error, got {result.errors}"
	return matching[0]


def codes(result: Any) -> list[str]:
	"""The codes of a result's errors, in order."""
	return [error.code for error in result.errors]


def kitchen_sink() -> Doc:
	"""A valid definition using every node type, joins and bodies included."""
	return definition(
		start(),
		switch("route", ("big", ".input.n > 10")),
		parallel("fork"),
		task("charge", retry={"max_attempts": 2}, compensation={"connector": "http", "action": "request"}),
		wait("pause", duration="PT5S"),
		join("merge", mode="n_of_m", n=2),
		map_("each", body([set_("double", "${ .item * 2 }")]), max_concurrency=4),
		loop(
			"poll",
			body([task("check"), wait("nap", duration=1)], chain("check", "nap")),
			condition=".done | not",
		),
		wait_for_event("paid", timeout_seconds=60),
		approval("ok", deadline_seconds=3600, escalation={"after_seconds": 600, "to_role": "admin"}),
		sub_workflow("child", version=1, on_failure="error_branch"),
		set_("shape", {"total": "${ .steps.each.output | add }"}),
		end("done", output="${ .steps.shape.output }"),
		fail("broken", message="Failed: ${ .error.message }"),
		edges=[
			edge("start", "route"),
			edge("route", "fork", "big"),
			edge("route", "each", "default"),
			edge("fork", "charge"),
			edge("fork", "pause"),
			edge("charge", "merge"),
			edge("pause", "merge"),
			edge("charge", "broken", "error"),
			edge("merge", "each"),
			edge("each", "poll"),
			edge("poll", "paid"),
			edge("paid", "ok"),
			edge("paid", "broken", "timeout"),
			edge("ok", "child", "approved"),
			edge("ok", "broken", "rejected"),
			edge("ok", "broken", "timeout", condition=".late"),
			edge("child", "shape"),
			edge("child", "broken", "error"),
			edge("shape", "done"),
		],
		outputs={"total": "${ .steps.shape.output.total }"},
		input_schema={"type": "object", "properties": {"n": {"type": "integer"}}},
	)
