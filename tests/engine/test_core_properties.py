"""Property: random valid workflows, with random failures, orderings and delays, always reach
a terminal state, and their recorded history replays to exactly the same final state."""

from __future__ import annotations

import contextlib
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.engine.harness import END, START, Failure, Sim, definition, node, replay, task
from workflows.engine.core import Cancel, Pause, Resume, RetryFailed, StepError, TimerFired
from workflows.engine.status import (
	TERMINAL_RUN_STATUSES,
	TERMINAL_STEP_STATUSES,
	IllegalTransition,
	RunStatus,
)

COMP = {"connector": "rand", "action": "undo", "input": {}}


@st.composite
def segments(
	draw: st.DrawFn, prefix: str, depth: int = 0
) -> tuple[list[dict[str, Any]], list[Any], str, str]:
	"""A piece of graph: (nodes, edges, entry id, exit id)."""
	kinds = ["task", "wait", "switch", "fork", "event"] + (["map", "loop"] if depth == 0 else [])
	kind = draw(st.sampled_from(kinds))
	retry = {
		"max_attempts": draw(st.integers(1, 3)),
		"initial_interval_seconds": draw(st.sampled_from([0, 1, 5])),
	}
	if kind == "task":
		extra = {"compensation": COMP} if draw(st.booleans()) else {}
		return [task(prefix, "rand.act", retry=retry, **extra)], [], prefix, prefix
	if kind == "wait":
		return [node(prefix, "wait", duration=draw(st.integers(0, 100)))], [], prefix, prefix
	if kind == "event":
		nodes = [
			node(prefix, "wait_for_event", event_type="e", correlation=".input.k", timeout_seconds=50),
			node(f"{prefix}_late", "set", values="late"),
			node(f"{prefix}_m", "set", values="merged"),
		]
		edges = [
			(prefix, f"{prefix}_m"),
			(prefix, f"{prefix}_late", "timeout"),
			(f"{prefix}_late", f"{prefix}_m"),
		]
		return nodes, edges, prefix, f"{prefix}_m"
	if kind == "switch":
		count = draw(st.integers(1, 3))
		cases = [{"id": f"c{i}", "condition": f".input.route == {i}"} for i in range(count)]
		nodes = [node(prefix, "switch", cases=cases), node(f"{prefix}_m", "set", values="merged")]
		edges: list[Any] = []
		for i, handle in enumerate([*(c["id"] for c in cases), "default"]):
			nodes.append(task(f"{prefix}_b{i}", "rand.act", retry=retry))
			edges += [(prefix, f"{prefix}_b{i}", handle), (f"{prefix}_b{i}", f"{prefix}_m")]
		return nodes, edges, prefix, f"{prefix}_m"
	if kind == "fork":
		branches = draw(st.integers(2, 3))
		mode = draw(st.sampled_from(["all", "any", "n_of_m"]))
		join = node(f"{prefix}_j", "join", mode=mode, **({"n": 2} if mode == "n_of_m" else {}))
		nodes = [node(prefix, "parallel"), join]
		edges = []
		for i in range(branches):
			nodes.append(task(f"{prefix}_b{i}", "rand.act", retry=retry))
			edges += [(prefix, f"{prefix}_b{i}"), (f"{prefix}_b{i}", f"{prefix}_j")]
		return nodes, edges, prefix, f"{prefix}_j"
	inner_nodes, inner_edges, _, _ = draw(segments(f"{prefix}_in", depth + 1))
	body = {"nodes": inner_nodes, "edges": [_edge(e) for e in inner_edges]}
	if kind == "map":
		return (
			[node(prefix, "map", items=".input.items", max_concurrency=draw(st.integers(1, 3)), body=body)],
			[],
			prefix,
			prefix,
		)
	return (
		[
			node(
				prefix,
				"loop",
				mode="until",
				condition=".index >= 2",
				max_iterations=draw(st.integers(1, 4)),
				body=body,
			)
		],
		[],
		prefix,
		prefix,
	)


def _edge(edge: Any) -> dict[str, Any]:
	source, target, *rest = edge
	return {"source": source, "target": target, **({"source_handle": rest[0]} if rest else {})}


@st.composite
def workflows(draw: st.DrawFn) -> dict[str, Any]:
	nodes: list[dict[str, Any]] = [START]
	edges: list[Any] = []
	previous = "start"
	for i in range(draw(st.integers(1, 4))):
		seg_nodes, seg_edges, entry, exit_ = draw(segments(f"s{i}"))
		nodes += seg_nodes
		edges += [*seg_edges, (previous, entry)]
		previous = exit_
	nodes.append(END)
	edges.append((previous, "end"))
	return definition(nodes, edges)


@settings(
	max_examples=int(os.environ.get("APG_PROPERTY_EXAMPLES", "60")),
	deadline=None,
	suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(doc=workflows(), data=st.data())
def test_random_workflows_always_terminate_and_replay_exactly(
	doc: dict[str, Any], data: st.DataObject
) -> None:
	outcomes = st.sampled_from(["ok", "ok", "ok", "retryable", "permanent"])

	def act(inp: Any, attempt: int) -> Any:
		outcome = data.draw(outcomes)
		if outcome == "retryable":
			raise Failure(StepError("flaky", "try again", retryable=True))
		if outcome == "permanent":
			raise Failure(StepError("broken", "no"))
		return {"attempt": attempt}

	sim = Sim(doc, actions={"rand.act": act, "rand.undo": lambda inp, attempt: {}})
	sim.start(
		{
			"k": "K",
			"route": data.draw(st.integers(0, 3)),
			"items": data.draw(st.lists(st.integers(), max_size=3)),
		}
	)
	retries = 0
	for _ in range(2_000):
		if sim.finished is not None:
			if sim.status == RunStatus.FAILED and retries < 2 and data.draw(st.booleans()):
				retries += 1
				sim.apply(RetryFailed())  # retry from the failed steps, keeping earlier outputs
				continue
			break
		choice = data.draw(st.sampled_from(["work", "work", "work", "timer", "event", "pause", "cancel"]))
		if choice == "work" and sim.queue:
			index = data.draw(st.integers(0, len(sim.queue) - 1))
			sim.queue.insert(0, sim.queue.pop(index))  # finish steps in any order
			sim.work_one()
		elif choice == "timer" and sim.timers:
			key, purpose = data.draw(st.sampled_from(sorted(sim.timers)))
			sim.now = max(sim.now, sim.timers.pop((key, purpose)))
			sim.apply(TimerFired(key, purpose))
		elif choice == "event" and sim.subscriptions:
			sim.event(data.draw(st.sampled_from(sorted(sim.subscriptions))), {"got": True})
		elif choice == "pause":
			with contextlib.suppress(IllegalTransition):  # refused while compensating: fine
				sim.apply(Pause())
				sim.apply(Resume())
		elif choice == "cancel" and data.draw(st.integers(0, 20)) == 0:
			with contextlib.suppress(IllegalTransition):
				sim.apply(Cancel(compensate=data.draw(st.booleans())))
		elif not sim.queue and not sim.timers and not sim.subscriptions:
			break
		elif not sim.queue and sim.timers:
			sim.tick(max(0.0, min(sim.timers.values()) - sim.now))
	sim.run()
	for key in list(sim.subscriptions):
		sim.event(key, {"got": True})
	sim.run()

	assert sim.finished is not None, f"run stuck in {sim.status}: queue={sim.queue} timers={sim.timers}"
	assert sim.status in TERMINAL_RUN_STATUSES
	assert sim.finished.status == sim.status
	still_active = [k for k, s in sim.steps.items() if s.status not in TERMINAL_STEP_STATUSES]
	assert not still_active, f"{sim.status} run left steps active: {still_active}"
	assert replay(doc, sim.history) == sim.state
