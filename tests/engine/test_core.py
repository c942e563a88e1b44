"""The scheduling core, node type by node type, policy by policy, with a fake clock."""

from __future__ import annotations

from typing import Literal

import pytest

from tests.engine.harness import END, START, Failure, Sim, definition, linear, node, replay, task
from workflows.dsl import RetryPolicy
from workflows.engine.core import Cancel, Pause, Resume, RetryFailed, StepError, StepSucceeded, backoff
from workflows.engine.status import IllegalTransition, RunStatus, StepStatus, check_run_transition

# --- basics -------------------------------------------------------------------------------


def test_a_linear_run_succeeds_with_the_last_output() -> None:
	sim = (
		Sim(
			linear(
				task("a", "test.echo", input={"x": "${ .input.n }"}),
				task("b", "noop.noop", input={"value": 7}),
			)
		)
		.start({"n": 3})
		.run()
	)

	assert sim.status == RunStatus.SUCCEEDED
	assert sim.finished is not None
	assert sim.finished.output == 7
	assert sim.output_of("root:a") == {"x": 3}
	assert sim.event_types()[0] == "run.started"
	assert sim.event_types()[-1] == "run.succeeded"
	assert [d.node_id for d in sim.dispatched] == ["a", "b"]


def test_status_is_running_while_a_step_executes_and_waiting_otherwise() -> None:
	sim = Sim(linear(task("a"), node("pause", "wait", duration="PT10S"))).start()

	running = sim.status
	sim.work()
	waiting = sim.status
	sim.tick(10)

	assert (running, waiting, sim.status) == (RunStatus.RUNNING, RunStatus.WAITING, RunStatus.SUCCEEDED)


def test_definition_outputs_shape_the_run_output() -> None:
	doc = linear(node("calc", "set", values={"total": "${ .input.a + .input.b }"}))
	doc["outputs"] = {"sum": "${ .steps.calc.output.total }", "label": "sum=${ .steps.calc.output.total }"}

	sim = Sim(doc).start({"a": 2, "b": 5}).run()

	assert sim.finished is not None
	assert sim.finished.output == {"sum": 7, "label": "sum=7"}


def test_end_output_template_wins() -> None:
	doc = definition(
		[START, node("done", "end", output={"ok": True, "n": "${ .input.n }"})], [("start", "done")]
	)

	sim = Sim(doc).start({"n": 1}).run()

	assert sim.finished is not None
	assert sim.finished.output == {"ok": True, "n": 1}


def test_set_and_expressions_see_input_steps_and_run_metadata() -> None:
	sim = (
		Sim(
			linear(
				node("a", "set", values={"doubled": "${ .input.n * 2 }"}),
				node("b", "set", values={"msg": "run ${ .run.run_id }: ${ .steps.a.output.doubled }"}),
			)
		)
		.start({"n": 21}, meta={"run_id": "abc"})
		.run()
	)

	assert sim.output_of("root:b") == {"msg": "run abc: 42"}


def test_an_expression_error_fails_the_node_with_its_location() -> None:
	sim = Sim(linear(node("bad", "set", values={"x": "${ .input.n | keys }"}))).start({"n": 1}).run()

	assert sim.status == RunStatus.FAILED
	assert sim.finished is not None
	error = sim.finished.error
	assert error is not None
	assert error["code"] == "expression_error"
	assert "node 'bad'" in error["message"]


# --- switch and edge conditions ----------------------------------------------------------------


def _switch_doc() -> dict:
	return definition(
		[
			START,
			node(
				"route",
				"switch",
				cases=[
					{"id": "big", "condition": "${ .input.amount > 1000 }"},
					{"id": "mid", "condition": ".input.amount > 100"},
				],
			),
			node("big", "set", values="big"),
			node("mid", "set", values="mid"),
			node("small", "set", values="small"),
			END,
		],
		[
			("start", "route"),
			("route", "big", "big"),
			("route", "mid", "mid"),
			("route", "small", "default"),
			("big", "end"),
			("mid", "end"),
			("small", "end"),
		],
	)


@pytest.mark.parametrize(("amount", "expected"), [(5000, "big"), (500, "mid"), (5, "small")])
def test_switch_takes_the_first_matching_case_else_default(amount: int, expected: str) -> None:
	sim = Sim(_switch_doc()).start({"amount": amount}).run()

	assert sim.finished is not None
	assert sim.finished.output == expected
	assert sim.output_of("root:route") == {"case": {"big": "big", "mid": "mid", "small": "default"}[expected]}


def test_edge_conditions_choose_the_first_true_and_the_unconditioned_edge_last() -> None:
	doc = definition(
		[START, node("a", "set", values="a"), node("b", "set", values="b"), END],
		[
			{"source": "start", "target": "b"},
			{"source": "start", "target": "a", "condition": "${ .input.go_a }"},
			("a", "end"),
			("b", "end"),
		],
	)

	took_a = Sim(doc).start({"go_a": True}).run()
	took_b = Sim(doc).start({"go_a": False}).run()

	assert took_a.finished is not None
	assert took_a.finished.output == "a"
	assert took_b.finished is not None
	assert took_b.finished.output == "b"
	assert "root:b" not in took_a.steps


# --- parallel and joins ----------------------------------------------------------------------


def _fork_join(mode: str, n: int | None = None) -> dict:
	join = node("join", "join", mode=mode, **({"n": n} if n else {}))
	return definition(
		[
			START,
			node("fork", "parallel"),
			task("a", "test.echo", input={"b": "a"}),
			task("b", "test.echo", input={"b": "b"}),
			task("c", "test.echo", input={"b": "c"}),
			join,
			END,
		],
		[
			("start", "fork"),
			("fork", "a"),
			("fork", "b"),
			("fork", "c"),
			("a", "join"),
			("b", "join"),
			("c", "join"),
			("join", "end"),
		],
	)


def test_join_all_waits_for_every_branch_and_collects_their_outputs() -> None:
	sim = Sim(_fork_join("all")).start()

	assert len(sim.queue) == 3
	sim.work_one()
	sim.work_one()
	assert sim.finished is None
	sim.run()

	assert sim.status == RunStatus.SUCCEEDED
	assert sim.output_of("root:join") == {"a": {"b": "a"}, "b": {"b": "b"}, "c": {"b": "c"}}


def test_join_any_proceeds_on_the_first_and_cancels_the_losers() -> None:
	sim = Sim(_fork_join("any")).start()

	sim.work_one()
	sim.run()

	assert sim.status == RunStatus.SUCCEEDED
	assert sim.output_of("root:join") == {"a": {"b": "a"}}
	assert sorted(sim.cancelled_steps) == ["root:b", "root:c"]
	assert sim.steps["root:b"].status == StepStatus.CANCELLED


def test_join_n_of_m() -> None:
	sim = Sim(_fork_join("n_of_m", 2)).start()

	sim.work_one()
	assert sim.finished is None
	sim.work_one()
	sim.run()

	assert sim.status == RunStatus.SUCCEEDED
	assert set(sim.output_of("root:join")) == {"a", "b"}
	assert sim.cancelled_steps == ["root:c"]


def test_a_late_result_from_a_cancelled_branch_is_ignored() -> None:
	sim = Sim(_fork_join("any")).start()
	late = sim.queue[1]
	sim.work_one()
	sim.run()

	assert not sim.apply(StepSucceeded(late.key, late.attempt, {"late": True}))
	assert sim.status == RunStatus.SUCCEEDED


def test_branches_whose_condition_is_false_are_not_waited_for() -> None:
	doc = definition(
		[START, node("fork", "parallel"), task("a"), task("b"), node("join", "join"), END],
		[
			("start", "fork"),
			("fork", "a"),
			{"source": "fork", "target": "b", "condition": "${ .input.with_b }"},
			("a", "join"),
			("b", "join"),
			("join", "end"),
		],
	)

	sim = Sim(doc).start({"with_b": False}).run()

	assert sim.status == RunStatus.SUCCEEDED
	assert [d.node_id for d in sim.dispatched] == ["a"]


# --- map ---------------------------------------------------------------------------------------


def _map_doc(concurrency: int = 2, items: str = "${ .input.items }", result: str | None = None) -> dict:
	body = {
		"nodes": [task("work", "test.echo", input={"v": "${ .item * 10 }", "i": "${ .index }"})],
		"edges": [],
	}
	config = {"items": items, "max_concurrency": concurrency, "body": body}
	if result:
		config["result"] = result
	return linear(node("each", "map", **config))


def test_map_runs_items_with_bounded_concurrency_and_keeps_input_order() -> None:
	sim = Sim(_map_doc(2)).start({"items": [1, 2, 3, 4, 5]})

	assert len(sim.queue) == 2
	sim.queue.reverse()  # finish the second item first
	sim.work_one()
	assert len(sim.queue) == 2  # a slot freed, the third item started
	sim.run()

	assert sim.status == RunStatus.SUCCEEDED
	assert sim.output_of("root:each") == [{"v": 10 * i, "i": i - 1} for i in range(1, 6)]
	assert max(len(s) for s in [sim.dispatched]) == 5
	assert not [f for f in (sim.state or {})["frames"] if "[" in f], "finished item frames are folded away"


def test_map_result_template_and_empty_items() -> None:
	summed = Sim(_map_doc(result="${ [.results[].v] | add }")).start({"items": [1, 2]}).run()
	empty = Sim(_map_doc()).start({"items": []}).run()

	assert summed.output_of("root:each") == 30
	assert empty.output_of("root:each") == []


def test_map_items_must_be_an_array() -> None:
	sim = Sim(_map_doc()).start({"items": {"not": "a list"}}).run()

	assert sim.status == RunStatus.FAILED
	assert sim.finished is not None
	assert sim.finished.error is not None
	assert "must be an array" in sim.finished.error["message"]


def test_a_failing_item_fails_the_map() -> None:
	sim = (
		Sim(
			_map_doc(),
			actions={
				"test.echo": lambda inp, a: (
					(_ for _ in ()).throw(Failure(StepError("bad_item", "no"))) if inp["i"] == 1 else inp
				)
			},
		)
		.start({"items": [1, 2, 3]})
		.run()
	)

	assert sim.status == RunStatus.FAILED
	assert sim.finished is not None
	assert sim.finished.error is not None
	assert sim.finished.error["code"] == "bad_item"


# --- loop -------------------------------------------------------------------------------------


def _loop_doc(mode: str, condition: str, max_iterations: int = 5) -> dict:
	body = {"nodes": [task("poll", "test.echo", input={"n": "${ .index }"})], "edges": []}
	return linear(
		node("repeat", "loop", mode=mode, condition=condition, max_iterations=max_iterations, body=body)
	)


def test_loop_until_sees_the_iteration_outputs() -> None:
	sim = Sim(_loop_doc("until", "${ .steps.poll.output.n >= 2 }")).start().run()

	assert sim.status == RunStatus.SUCCEEDED
	assert [d.input for d in sim.dispatched] == [{"n": 0}, {"n": 1}, {"n": 2}]
	assert sim.output_of("root:repeat") == {"n": 2}


def test_loop_while_checks_before_each_iteration() -> None:
	never = Sim(_loop_doc("while", "${ .input.go }")).start({"go": False}).run()
	three = Sim(_loop_doc("while", "${ .index < 3 }")).start().run()

	assert never.dispatched == []
	assert never.status == RunStatus.SUCCEEDED
	assert len(three.dispatched) == 3


def test_loop_max_iterations_is_enforced() -> None:
	sim = Sim(_loop_doc("while", "true", max_iterations=4)).start().run()

	assert sim.status == RunStatus.FAILED
	assert len(sim.dispatched) == 4
	assert sim.finished is not None
	assert sim.finished.error is not None
	assert sim.finished.error["code"] == "max_iterations_exceeded"


def test_a_retried_loop_starts_again_without_overwriting_the_first_try() -> None:
	sim = Sim(_loop_doc("while", "true", max_iterations=2)).start().run()
	assert sim.status == RunStatus.FAILED

	sim.apply(RetryFailed())
	sim.run()

	# The loop ran again as its second attempt, in frames of its own: every step of the first
	# try keeps its record (the harness refuses a finished step attempt recorded again).
	assert [d.key for d in sim.dispatched] == [
		"root:repeat#0:poll",
		"root:repeat#1:poll",
		"root:repeat@2#0:poll",
		"root:repeat@2#1:poll",
	]
	assert sim.steps["root:repeat"].attempt == 2
	assert sim.status == RunStatus.FAILED


# --- waits ---------------------------------------------------------------------------------------


def test_wait_duration_holds_no_worker_and_resumes_on_the_timer() -> None:
	sim = Sim(linear(node("pause", "wait", duration="PT1H"), task("after"))).start()

	sim.tick(3599)
	assert sim.status == RunStatus.WAITING
	assert sim.dispatched == []
	sim.tick(1).run()

	assert sim.status == RunStatus.SUCCEEDED


@pytest.mark.parametrize(
	("config", "wait_for"),
	[({"duration": "${ .input.secs }"}, 30), ({"until": "${ .input.at }"}, 1_000 + 45)],
)
def test_wait_from_expressions(config: dict, wait_for: float) -> None:
	sim = Sim(linear(node("pause", "wait", **config))).start({"secs": 30, "at": 1_045})

	fire_at = sim.timers[("root:pause", "wait")]

	assert fire_at == pytest.approx(wait_for if "until" in config else 1_000 + wait_for)


def test_wait_until_an_iso_timestamp() -> None:
	sim = Sim(linear(node("pause", "wait", until="2030-01-01T00:00:00Z"))).start()

	assert sim.timers[("root:pause", "wait")] == pytest.approx(1_893_456_000)


def test_a_bad_wait_duration_fails_clearly() -> None:
	sim = Sim(linear(node("pause", "wait", duration="${ .input.secs }"))).start({"secs": "soon"}).run()

	assert sim.status == RunStatus.FAILED
	assert sim.finished is not None
	assert sim.finished.error is not None
	assert "duration" in sim.finished.error["message"]


def _event_doc(timeout_edge: bool = True) -> dict:
	nodes = [
		START,
		node(
			"ack",
			"wait_for_event",
			event_type="incident.acked",
			correlation="${ .input.incident }",
			timeout_seconds=600,
		),
		node("escalate", "set", values="escalated"),
		END,
	]
	edges: list[tuple[str, ...]] = [("start", "ack"), ("ack", "end"), ("escalate", "end")]
	if timeout_edge:
		edges.append(("ack", "escalate", "timeout"))
	else:
		nodes.remove(nodes[2])
		edges.remove(("escalate", "end"))
	return definition(nodes, edges)


def test_wait_for_event_resumes_with_the_payload() -> None:
	sim = Sim(_event_doc()).start({"incident": "INC-7"})
	subscription = sim.subscriptions["root:ack"]

	sim.event("root:ack", {"by": "bob"})
	sim.run()

	assert (subscription.event_type, subscription.correlation) == ("incident.acked", "INC-7")
	assert sim.finished is not None
	assert sim.finished.output == {"by": "bob"}
	assert sim.subscriptions == {}
	assert sim.timers == {}


def test_wait_for_event_timeout_takes_the_timeout_branch() -> None:
	sim = Sim(_event_doc()).start({"incident": "INC-8"}).tick(600).run()

	assert sim.finished is not None
	assert sim.finished.output == "escalated"
	assert sim.subscriptions == {}
	assert not sim.event("root:ack", {"late": True})


def test_wait_for_event_timeout_without_a_branch_fails() -> None:
	sim = Sim(_event_doc(timeout_edge=False)).start({"incident": "INC-9"}).tick(601).run()

	assert sim.status == RunStatus.FAILED
	assert sim.finished is not None
	assert sim.finished.error is not None
	assert sim.finished.error["code"] == "event_timeout"


# --- approvals ----------------------------------------------------------------------------------


def _approval_doc() -> dict:
	return definition(
		[
			START,
			node(
				"review",
				"approval",
				role="admin",
				title="Approve spend",
				instructions="Spend ${ .input.amount }?",
				form_schema={"type": "object"},
				deadline_seconds=3600,
				escalation={"after_seconds": 600, "to_role": "owner"},
			),
			node("yes", "set", values="approved"),
			node("no", "set", values="rejected"),
			node("late", "set", values="timed out"),
			END,
		],
		[
			("start", "review"),
			("review", "yes", "approved"),
			("review", "no", "rejected"),
			("review", "late", "timeout"),
			("yes", "end"),
			("no", "end"),
			("late", "end"),
		],
	)


@pytest.mark.parametrize("decision", ["approved", "rejected"])
def test_approval_decisions_take_their_branch(decision: Literal["approved", "rejected"]) -> None:
	sim = Sim(_approval_doc()).start({"amount": 900})
	request = sim.approvals["root:review"]

	sim.decide("root:review", decision, comment="ok", data={"cost_center": "R&D"})
	sim.run()

	assert (request.title, request.instructions, request.role) == ("Approve spend", "Spend 900?", "admin")
	assert sim.finished is not None
	assert sim.finished.output == decision
	assert sim.output_of("root:review")["data"] == {"cost_center": "R&D"}
	assert sim.approvals == {}


def test_approval_escalates_then_times_out() -> None:
	sim = Sim(_approval_doc()).start({"amount": 1})

	sim.tick(600)
	escalated = list(sim.escalations)
	sim.tick(3000).run()

	assert [(e.to_role, e.to_assignees) for e in escalated] == [("owner", ())]
	assert sim.finished is not None
	assert sim.finished.output == "timed out"
	assert not sim.decide("root:review", "approved")


# --- sub-workflows -------------------------------------------------------------------------------


def _child_doc(on_failure: str = "fail", wait: bool = True) -> dict:
	nodes = [
		START,
		node(
			"child",
			"sub_workflow",
			workflow="billing",
			version=2,
			input={"id": "${ .input.id }"},
			on_failure=on_failure,
			wait=wait,
		),
		END,
	]
	edges: list = [("start", "child"), ("child", "end")]
	if on_failure == "error_branch":
		nodes.insert(2, node("handle", "set", values="handled"))
		edges += [("child", "handle", "error"), ("handle", "end")]
	return definition(nodes, edges)


def test_sub_workflow_parent_waits_for_the_child() -> None:
	sim = Sim(_child_doc()).start({"id": 5})
	started = sim.children["root:child"]

	assert sim.status == RunStatus.WAITING
	sim.child_done("root:child", output={"paid": True})
	sim.run()

	assert (started.workflow, started.version, started.input) == ("billing", 2, {"id": 5})
	assert sim.finished is not None
	assert sim.finished.output == {"paid": True}


@pytest.mark.parametrize(
	("policy", "status", "output"),
	[
		("fail", RunStatus.FAILED, None),
		(
			"continue",
			RunStatus.SUCCEEDED,
			{"error": {"code": "declined", "message": "card declined", "retryable": False}},
		),
		("error_branch", RunStatus.SUCCEEDED, "handled"),
	],
)
def test_sub_workflow_failure_policies(policy: str, status: RunStatus, output: object) -> None:
	sim = Sim(_child_doc(policy)).start({"id": 1})

	sim.child_done("root:child", succeeded=False, error=StepError("declined", "card declined"))
	sim.run()

	assert sim.status == status
	assert sim.finished is not None
	assert sim.finished.output == output


def test_fire_and_forget_sub_workflow() -> None:
	sim = Sim(_child_doc(wait=False)).start({"id": 1}).run()

	assert sim.status == RunStatus.SUCCEEDED
	assert "root:child" in sim.children


# --- failures, retries -----------------------------------------------------------------------------


def test_fail_node_fails_the_run_with_its_code_and_message() -> None:
	doc = definition(
		[START, node("stop", "fail", error_code="kyc_rejected", message="customer ${ .input.id } rejected")],
		[("start", "stop")],
	)

	sim = Sim(doc).start({"id": 9}).run()

	assert sim.status == RunStatus.FAILED
	assert sim.finished is not None
	assert sim.finished.error == {
		"code": "kyc_rejected",
		"message": "customer 9 rejected",
		"retryable": False,
	}


def test_retryable_errors_retry_with_backoff_then_give_up() -> None:
	attempts: list[tuple[int, float]] = []
	holder: list[Sim] = []

	def flaky(inp: object, attempt: int) -> object:
		attempts.append((attempt, holder[0].now))
		raise Failure(StepError("http_503", "unavailable", retryable=True))

	doc = linear(
		task(
			"call",
			"ext.call",
			retry={"max_attempts": 3, "initial_interval_seconds": 10, "backoff_coefficient": 2},
		)
	)
	holder.append(Sim(doc, actions={"ext.call": flaky}))
	sim = holder[0].start().run()

	assert [a for a, _ in attempts] == [1, 2, 3]
	gaps = [b - a for (_, a), (_, b) in zip(attempts, attempts[1:], strict=False)]
	assert 8 <= gaps[0] <= 12
	assert 16 <= gaps[1] <= 24
	assert sim.status == RunStatus.FAILED
	assert sim.finished is not None
	assert sim.finished.error is not None
	assert "gave up after 3 attempts" in sim.finished.error["message"]
	assert sim.event_types().count("step.retrying") == 2


def test_a_retry_that_succeeds_continues_the_run() -> None:
	doc = linear(task("call", "ext.call", retry={"max_attempts": 5, "initial_interval_seconds": 1}))
	sim = (
		Sim(
			doc,
			actions={
				"ext.call": lambda inp, attempt: (
					{"ok": attempt}
					if attempt == 3
					else (_ for _ in ()).throw(Failure(StepError("x", "y", True)))
				)
			},
		)
		.start()
		.run()
	)

	assert sim.status == RunStatus.SUCCEEDED
	assert sim.finished is not None
	assert sim.finished.output == {"ok": 3}


@pytest.mark.parametrize(
	"retry", [{"max_attempts": 5}, {"max_attempts": 5, "non_retryable_errors": ["card_declined"]}]
)
def test_non_retryable_errors_fail_at_once(retry: dict) -> None:
	retryable = "non_retryable_errors" in retry
	doc = linear(
		task("charge", "fail.fail", input={"code": "card_declined", "retryable": retryable}, retry=retry)
	)

	sim = Sim(doc).start().run()

	assert sim.status == RunStatus.FAILED
	assert len(sim.dispatched) == 1


def test_an_error_edge_handles_a_failure() -> None:
	doc = definition(
		[
			START,
			task("deploy", "fail.fail", input={"code": "deploy_failed"}),
			node("rollback", "set", values="${ .steps.deploy.output.error.code }"),
			END,
		],
		[("start", "deploy"), ("deploy", "end"), ("deploy", "rollback", "error"), ("rollback", "end")],
	)

	sim = Sim(doc).start().run()

	assert sim.status == RunStatus.SUCCEEDED
	assert sim.finished is not None
	assert sim.finished.output == "deploy_failed"


def test_backoff_is_capped_and_deterministic() -> None:
	policy = RetryPolicy(
		max_attempts=10, initial_interval_seconds=1, backoff_coefficient=3, max_interval_seconds=20
	)

	delays = [backoff(policy, attempt, "root:x") for attempt in range(1, 8)]

	assert delays == [backoff(policy, attempt, "root:x") for attempt in range(1, 8)]
	assert all(d <= 20 for d in delays)
	assert delays[0] < delays[2]


def test_a_task_output_template_is_passed_through_to_the_worker() -> None:
	sim = Sim(linear(task("get", "test.echo", input={"a": 1}, output="${ .result.a }"))).start()

	assert sim.queue[0].output_template == "${ .result.a }"
	assert sim.queue[0].idempotency_key == "r1:root:get:1"


# --- compensation -------------------------------------------------------------------------------


def _saga(fail_at: str = "ship", comp_fails: bool = False) -> Sim:
	def comp(name: str) -> dict:
		return {"connector": "comp", "action": "undo", "input": {"undo": name, "ref": "${ .result.ref }"}}

	undone: list[str] = []

	def undo(inp: dict, attempt: int) -> dict:
		if comp_fails and inp["undo"] == "charge":
			raise Failure(StepError("refund_failed", "gateway down", retryable=True))
		undone.append(inp["undo"])
		return {"undone": inp["undo"], "ref": inp["ref"]}

	doc = linear(
		task("reserve", "test.echo", input={"ref": "R1"}, compensation=comp("reserve")),
		task(
			"charge",
			"test.echo",
			input={"ref": "C1"},
			compensation=comp("charge"),
			retry={"max_attempts": 2, "initial_interval_seconds": 1},
		),
		task("ship", "fail.fail" if fail_at == "ship" else "test.echo", input={"code": "no_courier"}),
	)
	sim = Sim(doc, actions={"comp.undo": undo})
	sim.undone = undone
	return sim


def test_a_failure_compensates_completed_steps_in_reverse_order() -> None:
	sim = _saga().start().run()

	assert sim.status == RunStatus.COMPENSATED
	assert sim.undone == ["charge", "reserve"]
	assert sim.steps["compensate:root:reserve"].output == {"undone": "reserve", "ref": "R1"}
	assert sim.finished is not None
	assert sim.finished.error is not None
	assert sim.finished.error["code"] == "no_courier"


def test_a_failing_compensation_is_retried_then_recorded() -> None:
	sim = _saga(comp_fails=True).start().run()

	assert sim.status == RunStatus.COMPENSATION_FAILED
	assert sim.undone == ["reserve"]
	assert sim.finished is not None
	assert sim.finished.error is not None
	assert sim.finished.error["compensation_failed"][0]["key"] == "root:charge"
	assert sim.event_types().count("compensation.retrying") == 1


def test_cancel_with_compensation() -> None:
	doc = linear(
		task(
			"reserve",
			"test.echo",
			input={"ref": "R"},
			compensation={"connector": "noop", "action": "noop", "input": {}},
		),
		node("hold", "wait", duration="PT1H"),
	)
	sim = Sim(doc).start().work()

	sim.cancel(compensate=True)
	sim.run()

	assert sim.status == RunStatus.COMPENSATED
	assert sim.timers == {}


def test_cancel_without_compensation_stops_everything() -> None:
	sim = Sim(_fork_join("all")).start()

	sim.cancel()

	assert sim.status == RunStatus.CANCELLED
	assert sorted(sim.cancelled_steps) == ["root:a", "root:b", "root:c"]
	assert sim.queue == []
	with pytest.raises(IllegalTransition, match="Cannot cancel: the run is cancelled"):
		sim.engine.apply(sim.state, Cancel(), now=sim.now)


# --- lifecycle: pause, resume, retry, timeouts ----------------------------------------------------


def test_pause_holds_new_dispatches_until_resume() -> None:
	sim = Sim(linear(task("a"), task("b"))).start()

	sim.apply(Pause())
	sim.work()
	held = (sim.status, list(sim.queue))
	sim.apply(Resume())
	sim.run()

	assert held == (RunStatus.PAUSED, [])
	assert sim.status == RunStatus.SUCCEEDED
	assert [d.node_id for d in sim.dispatched] == ["a", "b"]


def test_retry_a_failed_run_from_the_failed_step_keeping_earlier_outputs() -> None:
	calls = {"n": 0}

	def sometimes(inp: object, attempt: int) -> object:
		calls["n"] += 1
		if calls["n"] == 1:
			raise Failure(StepError("down", "service down"))
		return {"ok": True}

	sim = (
		Sim(
			linear(task("first", "test.echo", input={"v": 1}), task("second", "ext.call")),
			actions={"ext.call": sometimes},
		)
		.start()
		.run()
	)
	assert sim.status == RunStatus.FAILED
	first_runs = [d for d in sim.dispatched if d.node_id == "first"]

	sim.apply(RetryFailed())
	sim.run()

	assert sim.status == RunStatus.SUCCEEDED
	assert [d for d in sim.dispatched if d.node_id == "first"] == first_runs
	assert [d.attempt for d in sim.dispatched if d.node_id == "second"] == [1, 2]


def test_only_failed_runs_can_be_retried() -> None:
	from workflows.engine.core import IllegalRetry

	sim = Sim(linear(task("a"))).start().run()

	with pytest.raises(IllegalRetry, match="only failed runs"):
		sim.engine.apply(sim.state, RetryFailed(), now=sim.now)


def test_run_timeout_fails_the_run() -> None:
	doc = linear(node("pause", "wait", duration="PT2H"))
	doc["defaults"] = {"run_timeout_seconds": 3600}

	sim = Sim(doc).start().tick(3600).run()

	assert sim.status == RunStatus.FAILED
	assert sim.finished is not None
	assert sim.finished.error is not None
	assert sim.finished.error["code"] == "run_timeout"
	assert sim.timers == {}


def test_duplicate_and_stale_results_are_ignored() -> None:
	sim = Sim(linear(task("a"), task("b"))).start()
	first = sim.queue[0]
	sim.work_one()

	assert not sim.apply(StepSucceeded(first.key, first.attempt, {"again": True}))
	assert not sim.apply(StepSucceeded("root:nope", 1, {}))
	assert not sim.apply(StepSucceeded("root:b", 7, {}))


def test_lifecycle_table() -> None:
	check_run_transition(RunStatus.RUNNING, RunStatus.PAUSED)
	check_run_transition(RunStatus.FAILED, RunStatus.RUNNING)
	with pytest.raises(IllegalTransition, match="Cannot move to running: the run is succeeded"):
		check_run_transition(RunStatus.SUCCEEDED, RunStatus.RUNNING)


def test_history_replays_to_the_same_state() -> None:
	sim = _saga().start().run()

	assert replay(sim.doc, sim.history) == sim.state


# --- expression errors after a step finished ------------------------------------------------------


def _erroring(where: str) -> dict:
	bad = "${ .input.n | keys }"
	if where == "edge":
		return definition(
			[START, task("a"), node("b", "set", values=1), END],
			[("start", "a"), {"source": "a", "target": "b", "condition": bad}, ("b", "end")],
		)
	if where == "map_result":
		body = {"nodes": [task("w")], "edges": []}
		return linear(node("m", "map", items="${ [1] }", body=body, result=bad))
	if where == "loop_condition":
		body = {"nodes": [task("w")], "edges": []}
		return linear(node("l", "loop", mode="until", condition=bad, max_iterations=3, body=body))
	if where == "outputs":
		doc = linear(task("a"))
		doc["outputs"] = {"x": bad}
		return doc
	# Branch b finishes after a's first attempt, so only the retry's input sees it.
	flaky = task(
		"a",
		"fail.fail",
		input={
			"code": "x",
			"retryable": True,
			"n": "${ if .steps.b then (.steps.b.output | keys) else 1 end }",
		},
		retry={"max_attempts": 2, "initial_interval_seconds": 1},
	)
	return definition(
		[START, node("fork", "parallel"), flaky, node("b", "set", values=1), node("join", "join"), END],
		[("start", "fork"), ("fork", "a"), ("fork", "b"), ("a", "join"), ("b", "join"), ("join", "end")],
	)


@pytest.mark.parametrize(
	("where", "field"),
	[
		("edge", "edge condition"),
		("map_result", "result"),
		("loop_condition", "condition"),
		("outputs", "outputs"),
	],
)
def test_an_expression_error_after_a_step_fails_the_run_cleanly(where: str, field: str) -> None:
	sim = Sim(_erroring(where)).start({"n": 1}).run()

	assert sim.status == RunStatus.FAILED
	assert sim.finished is not None
	assert sim.finished.error is not None
	assert sim.finished.error["code"] == "expression_error"
	assert field in sim.finished.error["message"]


def test_an_input_expression_error_on_retry_fails_the_step() -> None:
	sim = Sim(_erroring("retry")).start({"n": 1}).run()

	assert sim.status == RunStatus.FAILED
	assert sim.finished is not None
	assert sim.finished.error is not None
	assert sim.finished.error["code"] == "expression_error"


def test_a_compensation_whose_input_cannot_be_built_is_recorded_as_failed() -> None:
	doc = linear(
		task(
			"reserve",
			compensation={"connector": "noop", "action": "noop", "input": {"x": "${ .input.n | keys }"}},
		),
		task("boom", "fail.fail", input={"code": "no"}),
	)

	sim = Sim(doc).start({"n": 1}).run()

	assert sim.status == RunStatus.COMPENSATION_FAILED
	assert sim.finished is not None
	assert sim.finished.error is not None
	assert sim.finished.error["compensation_failed"][0]["error"]["code"] == "expression_error"
