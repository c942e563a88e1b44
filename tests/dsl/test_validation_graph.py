"""Graph rules: one start, unique ids, edges that connect, handles, reachability, cycles, joins.

Every rule has a passing and a failing definition; failing ones check the pointer, the code
and that the message names the node and the hint says what to do.
"""

from __future__ import annotations

from tests.dsl import factories as f
from tests.dsl.factories import codes, the_error
from workflows.dsl import Definition, validate_definition


def test_a_linear_definition_is_valid() -> None:
	# Given start -> task -> end
	doc = f.linear(f.task("fetch"))
	# When validated
	result = validate_definition(doc)
	# Then it is valid and typed
	assert result.ok, result.errors
	assert isinstance(result.definition, Definition)
	assert result.to_dict() == {"ok": True, "errors": []}


def test_the_example_is_valid() -> None:
	result = validate_definition(f.EXAMPLE)
	assert result.ok, result.errors


# --- start node ---------------------------------------------------------------------


def test_missing_start() -> None:
	result = validate_definition(f.definition(f.set_("a"), f.end()))
	error = the_error(result, "missing_start")
	assert error.pointer == "/nodes"
	assert "start" in error.hint
	assert result.definition is None


def test_two_start_nodes() -> None:
	result = validate_definition(
		f.definition(f.start("s1"), f.start("s2"), f.end(), edges=[f.edge("s1", "end"), f.edge("s2", "end")])
	)
	error = the_error(result, "multiple_start")
	assert error.pointer == "/nodes/1/type"
	assert "'s2'" in error.message
	assert "'s1'" in error.message


def test_start_inside_a_body() -> None:
	doc = f.linear(f.loop("l", f.body([f.start("inner")])))
	error = the_error(validate_definition(doc), "start_in_body")
	assert error.pointer == "/nodes/1/config/body/nodes/0/type"
	assert "'inner'" in error.message
	assert "loop 'l'" in error.message


def test_edge_into_start() -> None:
	doc = f.definition(f.start(), f.set_("a"), edges=[f.edge("start", "a"), f.edge("a", "start")])
	result = validate_definition(doc)
	error = the_error(result, "start_has_incoming")
	assert error.pointer == "/edges/1/target"
	assert "loop" in error.hint
	assert "cycle" in codes(result)


# --- ids ----------------------------------------------------------------------------


def test_duplicate_node_id_across_a_body() -> None:
	# Given a body node with the same id as a top-level node
	doc = f.linear(f.set_("a"), f.map_("m", f.body([f.set_("a")])))
	# Then the second one is reported, pointing at the first
	error = the_error(validate_definition(doc), "duplicate_node_id")
	assert error.pointer == "/nodes/2/config/body/nodes/0/id"
	assert "/nodes/1" in error.message
	assert "own id" in error.hint


def test_unique_ids_in_bodies_pass() -> None:
	doc = f.linear(f.map_("m", f.body([f.set_("a"), f.set_("b")], f.chain("a", "b"))))
	assert validate_definition(doc).ok


def test_duplicate_edge_id() -> None:
	doc = f.definition(
		f.start(), f.set_("a"), f.end(), edges=[f.edge("start", "a", id="e1"), f.edge("a", "end", id="e1")]
	)
	error = the_error(validate_definition(doc), "duplicate_edge_id")
	assert error.pointer == "/edges/1/id"
	assert "/edges/0" in error.message


def test_distinct_edge_ids_pass() -> None:
	doc = f.definition(
		f.start(), f.set_("a"), f.end(), edges=[f.edge("start", "a", id="e1"), f.edge("a", "end", id="e2")]
	)
	assert validate_definition(doc).ok


# --- edges --------------------------------------------------------------------------


def test_edge_to_an_unknown_node() -> None:
	doc = f.definition(f.start(), f.end(), edges=[f.edge("start", "end"), f.edge("ghost", "nowhere")])
	result = validate_definition(doc)
	errors = [error for error in result.errors if error.code == "unknown_node"]
	assert [error.pointer for error in errors] == ["/edges/1/source", "/edges/1/target"]
	assert "'ghost'" in errors[0].message
	assert "top level" in errors[0].hint


def test_edge_crossing_into_a_body() -> None:
	doc = f.definition(
		f.start(),
		f.loop("l", f.body([f.set_("inner")])),
		edges=[f.edge("start", "l"), f.edge("start", "inner", condition=".x")],
	)
	error = the_error(validate_definition(doc), "edge_crosses_body")
	assert error.pointer == "/edges/1/target"
	assert "body of loop 'l'" in error.message


def test_edge_crossing_out_of_a_body() -> None:
	inner = f.body([f.set_("inner")], [f.edge("inner", "start")])
	doc = f.linear(f.loop("l", inner))
	error = the_error(validate_definition(doc), "edge_crosses_body")
	assert error.pointer == "/nodes/1/config/body/edges/0/target"
	assert "top level" in error.message


def test_terminal_nodes_have_no_outgoing_edges() -> None:
	doc = f.definition(f.start(), f.end(), f.fail(), edges=[f.edge("start", "end"), f.edge("end", "fail")])
	error = the_error(validate_definition(doc), "terminal_has_outgoing")
	assert error.pointer == "/edges/1"
	assert "end 'end'" in error.message


def test_fail_node_may_be_a_target() -> None:
	doc = f.definition(
		f.start(), f.task("t"), f.fail(), edges=[f.edge("start", "t"), f.edge("t", "fail", "error")]
	)
	assert validate_definition(doc).ok


def test_unknown_handle() -> None:
	doc = f.definition(
		f.start(), f.task("t"), f.end(), edges=[f.edge("start", "t"), f.edge("t", "end", "failure")]
	)
	error = the_error(validate_definition(doc), "invalid_handle")
	assert error.pointer == "/edges/1/source_handle"
	assert "task 't' has no handle 'failure'" in error.message
	assert error.hint == "set source_handle to one of: out, error"


def test_switch_edges_need_a_case_handle() -> None:
	# Given a switch edge without a handle (read as 'out', which a switch does not have)
	doc = f.definition(
		f.start(),
		f.switch("s", ("big", ".n > 10")),
		f.end(),
		edges=[f.edge("start", "s"), f.edge("s", "end")],
	)
	error = the_error(validate_definition(doc), "invalid_handle")
	assert "no default handle 'out'" in error.message
	assert "big, default" in error.hint


def test_switch_edges_on_cases_and_default_pass() -> None:
	doc = f.definition(
		f.start(),
		f.switch("s", ("big", ".n > 10"), ("small", ".n < 2")),
		f.set_("a"),
		f.set_("b"),
		f.end(),
		edges=[
			f.edge("start", "s"),
			f.edge("s", "a", "big"),
			f.edge("s", "b", "small"),
			f.edge("s", "end", "default"),
		],
	)
	assert validate_definition(doc).ok


def test_approval_handles_pass() -> None:
	doc = f.definition(
		f.start(),
		f.approval("ok", deadline_seconds=60),
		f.set_("yes"),
		f.set_("no"),
		f.set_("late"),
		edges=[
			f.edge("start", "ok"),
			f.edge("ok", "yes", "approved"),
			f.edge("ok", "no", "rejected"),
			f.edge("ok", "late", "timeout"),
		],
	)
	assert validate_definition(doc).ok


def test_timeout_handle_without_timeout_is_never_taken() -> None:
	doc = f.definition(
		f.start(),
		f.wait_for_event("ev"),
		f.approval("ok"),
		f.end(),
		edges=[
			f.edge("start", "ev"),
			f.edge("ev", "ok"),
			f.edge("ev", "end", "timeout"),
			f.edge("ok", "end", "approved"),
			f.edge("ok", "end", "timeout"),
		],
	)
	errors = [error for error in validate_definition(doc).errors if error.code == "handle_never_taken"]
	assert [error.pointer for error in errors] == ["/edges/2/source_handle", "/edges/4/source_handle"]
	assert "timeout_seconds" in errors[0].message
	assert "deadline_seconds" in errors[1].message


def test_wait_for_event_timeout_handle_with_timeout_passes() -> None:
	doc = f.definition(
		f.start(),
		f.wait_for_event("ev", timeout_seconds=30),
		f.end(),
		f.fail(),
		edges=[f.edge("start", "ev"), f.edge("ev", "end"), f.edge("ev", "fail", "timeout")],
	)
	assert validate_definition(doc).ok


def test_sub_workflow_error_edge_needs_error_branch() -> None:
	doc = f.definition(
		f.start(),
		f.sub_workflow("sw"),
		f.fail(),
		edges=[f.edge("start", "sw"), f.edge("sw", "fail", "error")],
	)
	error = the_error(validate_definition(doc), "handle_never_taken")
	assert "on_failure" in error.message


def test_sub_workflow_error_branch_needs_an_error_edge() -> None:
	doc = f.linear(f.sub_workflow("sw", on_failure="error_branch"))
	error = the_error(validate_definition(doc), "missing_error_branch")
	assert error.pointer == "/nodes/1/config/on_failure"
	assert "source_handle 'error'" in error.hint


def test_sub_workflow_error_branch_with_edge_passes() -> None:
	doc = f.definition(
		f.start(),
		f.sub_workflow("sw", on_failure="error_branch"),
		f.end(),
		f.fail(),
		edges=[f.edge("start", "sw"), f.edge("sw", "end"), f.edge("sw", "fail", "error")],
	)
	assert validate_definition(doc).ok


def test_duplicate_edge() -> None:
	doc = f.definition(
		f.start(),
		f.end(),
		edges=[f.edge("start", "end", condition=".a"), f.edge("start", "end", condition=".b")],
	)
	error = the_error(validate_definition(doc), "duplicate_edge")
	assert error.pointer == "/edges/1"


def test_two_unconditioned_edges_on_one_handle() -> None:
	doc = f.definition(
		f.start(), f.set_("a"), f.set_("b"), edges=[f.edge("start", "a"), f.edge("start", "b")]
	)
	error = the_error(validate_definition(doc), "duplicate_unconditioned_edge")
	assert error.pointer == "/edges/1"
	assert "start 'start'" in error.message
	assert "parallel" in error.hint


def test_conditioned_edge_with_a_fallback_passes() -> None:
	doc = f.definition(
		f.start(),
		f.set_("a"),
		f.set_("b"),
		edges=[f.edge("start", "b"), f.edge("start", "a", condition=".x > 1")],
	)
	assert validate_definition(doc).ok


def test_parallel_may_have_many_unconditioned_edges() -> None:
	doc = f.definition(
		f.start(),
		f.parallel("p"),
		f.set_("a"),
		f.set_("b"),
		edges=[f.edge("start", "p"), f.edge("p", "a"), f.edge("p", "b")],
	)
	assert validate_definition(doc).ok


def test_duplicate_switch_case_ids() -> None:
	doc = f.definition(f.start(), f.switch("s", ("x", ".a"), ("x", ".b")), edges=[f.edge("start", "s")])
	error = the_error(validate_definition(doc), "duplicate_case_id")
	assert error.pointer == "/nodes/1/config/cases/1/id"
	assert "switch 's'" in error.message


# --- reachability and cycles --------------------------------------------------------


def test_unreachable_node() -> None:
	doc = f.definition(f.start(), f.end(), f.set_("orphan"), edges=[f.edge("start", "end")])
	error = the_error(validate_definition(doc), "unreachable")
	assert error.pointer == "/nodes/2"
	assert "'orphan'" in error.message
	assert "'start'" in error.message


def test_unreachable_node_in_a_body() -> None:
	# Given a body entered at 'a', with 'c' and 'd' only reachable from each other
	inner = f.body(
		[f.set_("a"), f.set_("b"), f.set_("c"), f.set_("d")],
		[f.edge("a", "b"), f.edge("c", "d"), f.edge("d", "c")],
	)
	result = validate_definition(f.linear(f.loop("l", inner)))
	unreachable = [error for error in result.errors if error.code == "unreachable"]
	assert [error.pointer for error in unreachable] == [
		"/nodes/1/config/body/nodes/2",
		"/nodes/1/config/body/nodes/3",
	]
	assert "entry of the body of loop 'l' ('a')" in unreachable[0].message
	assert "cycle" in codes(result)


def test_cycle() -> None:
	doc = f.definition(
		f.start(), f.set_("a"), f.set_("b"), edges=[f.edge("start", "a"), f.edge("a", "b"), f.edge("b", "a")]
	)
	error = the_error(validate_definition(doc), "cycle")
	assert error.pointer == "/edges/2"
	assert "a -> b -> a" in error.message
	assert "loop node" in error.hint


def test_self_loop_is_a_cycle() -> None:
	doc = f.definition(
		f.start(), f.set_("a"), edges=[f.edge("start", "a"), f.edge("a", "a", condition=".again")]
	)
	error = the_error(validate_definition(doc), "cycle")
	assert "a -> a" in error.message


def test_cycle_inside_a_body() -> None:
	inner = f.body(
		[f.set_("a"), f.set_("b"), f.set_("c")], [f.edge("a", "b"), f.edge("b", "c"), f.edge("c", "b")]
	)
	error = the_error(validate_definition(f.linear(f.loop("l", inner))), "cycle")
	assert error.pointer == "/nodes/1/config/body/edges/2"


def test_empty_body() -> None:
	error = the_error(validate_definition(f.linear(f.map_("m", f.body([])))), "empty_body")
	assert error.pointer == "/nodes/1/config/body"
	assert "map 'm'" in error.message


def test_body_without_entry() -> None:
	inner = f.body([f.set_("a"), f.set_("b")], [f.edge("a", "b"), f.edge("b", "a")])
	result = validate_definition(f.linear(f.loop("l", inner)))
	error = the_error(result, "body_without_entry")
	assert error.pointer == "/nodes/1/config/body"


def test_body_with_two_entries() -> None:
	inner = f.body([f.set_("a"), f.set_("b")])
	error = the_error(validate_definition(f.linear(f.loop("l", inner))), "body_multiple_entries")
	assert "'a', 'b'" in error.message
	assert "parallel" in error.hint


def test_body_chain_passes() -> None:
	inner = f.body([f.set_("a"), f.set_("b")], [f.edge("a", "b")])
	assert validate_definition(f.linear(f.loop("l", inner))).ok


# --- joins --------------------------------------------------------------------------


def _fork_join(join: dict, *, extra_nodes: tuple = (), extra_edges: tuple = ()) -> dict:
	return f.definition(
		f.start(),
		f.parallel("p"),
		f.set_("a"),
		f.set_("b"),
		join,
		f.end(),
		*extra_nodes,
		edges=[
			f.edge("start", "p"),
			f.edge("p", "a"),
			f.edge("p", "b"),
			f.edge("a", "j"),
			f.edge("b", "j"),
			f.edge("j", "end"),
			*extra_edges,
		],
	)


def test_join_infers_its_fork() -> None:
	assert validate_definition(_fork_join(f.join("j"))).ok


def test_join_with_explicit_fork_and_n_of_m() -> None:
	assert validate_definition(_fork_join(f.join("j", fork="p", mode="n_of_m", n=2))).ok
	assert validate_definition(_fork_join(f.join("j", mode="any"))).ok


def test_nested_forks_infer_the_nearest() -> None:
	doc = f.definition(
		f.start(),
		f.parallel("outer"),
		f.parallel("inner"),
		f.set_("a"),
		f.set_("b"),
		f.join("inner_join", mode="n_of_m", n=2),
		f.set_("c"),
		f.join("outer_join", mode="n_of_m", n=2),
		edges=[
			f.edge("start", "outer"),
			f.edge("outer", "inner"),
			f.edge("outer", "c"),
			f.edge("inner", "a"),
			f.edge("inner", "b"),
			f.edge("a", "inner_join"),
			f.edge("b", "inner_join"),
			f.edge("inner_join", "outer_join"),
			f.edge("c", "outer_join"),
		],
	)
	assert validate_definition(doc).ok


def test_join_without_a_fork() -> None:
	doc = f.definition(
		f.start(),
		f.switch("s", ("x", ".x")),
		f.set_("a"),
		f.set_("b"),
		f.join("j"),
		edges=[
			f.edge("start", "s"),
			f.edge("s", "a", "x"),
			f.edge("s", "b", "default"),
			f.edge("a", "j"),
			f.edge("b", "j"),
		],
	)
	error = the_error(validate_definition(doc), "join_without_fork")
	assert error.pointer == "/nodes/4"
	assert "join 'j'" in error.message
	assert "config.fork" in error.hint


def test_join_naming_a_missing_or_wrong_fork() -> None:
	missing = the_error(validate_definition(_fork_join(f.join("j", fork="nope"))), "invalid_fork")
	assert missing.pointer == "/nodes/4/config/fork"
	assert "not a node at this level" in missing.message
	wrong = the_error(validate_definition(_fork_join(f.join("j", fork="a"))), "invalid_fork")
	assert "a set node" in wrong.message


def test_join_fed_from_outside_its_fork() -> None:
	doc = _fork_join(
		f.join("j", fork="p"),
		extra_nodes=(f.set_("x"),),
		extra_edges=(f.edge("start", "x", condition=".x"), f.edge("x", "j")),
	)
	error = the_error(validate_definition(doc), "join_branch_outside_fork")
	assert error.pointer == "/edges/7"
	assert "'x' is not on a branch of its fork 'p'" in error.message


def test_join_reachable_around_its_fork() -> None:
	# Given start -> s; s(case) -> p; s(default) -> a; p -> a, b; a, b -> j
	doc = f.definition(
		f.start(),
		f.switch("s", ("go", ".go")),
		f.parallel("p"),
		f.set_("a"),
		f.set_("b"),
		f.join("j", fork="p"),
		edges=[
			f.edge("start", "s"),
			f.edge("s", "p", "go"),
			f.edge("s", "a", "default"),
			f.edge("p", "a"),
			f.edge("p", "b"),
			f.edge("a", "j"),
			f.edge("b", "j"),
		],
	)
	error = the_error(validate_definition(doc), "join_fork_not_dominating")
	assert error.pointer == "/nodes/5/config/fork"
	assert "without passing its fork 'p'" in error.message


def test_join_n_larger_than_branches() -> None:
	error = the_error(validate_definition(_fork_join(f.join("j", mode="n_of_m", n=3))), "join_n_too_large")
	assert error.pointer == "/nodes/4/config/n"
	assert "2 branch(es)" in error.message
	assert "at most 2" in error.hint


def test_join_inside_a_body() -> None:
	inner = f.body(
		[f.parallel("p"), f.set_("a"), f.set_("b"), f.join("j")],
		[f.edge("p", "a"), f.edge("p", "b"), f.edge("a", "j"), f.edge("b", "j")],
	)
	assert validate_definition(f.linear(f.map_("m", inner))).ok


def test_every_node_type_together_is_valid() -> None:
	result = validate_definition(f.kitchen_sink())
	assert result.ok, result.errors


def test_every_node_type_with_every_reference_known() -> None:
	# Given a resolver that knows every reference of the kitchen sink
	from tests.dsl.conftest import FakeResolver
	from workflows.dsl import ActionInfo

	resolver = FakeResolver(actions={("http", "request"): ActionInfo()}, workflows={("child", 1)})
	assert validate_definition(f.kitchen_sink(), references=resolver).ok


def test_duplicate_join_ids_are_reported_once() -> None:
	doc = _fork_join(f.join("j"), extra_nodes=(f.join("j"),))
	result = validate_definition(doc)
	assert codes(result) == ["duplicate_node_id"]


def test_unreachable_predecessor_of_a_join() -> None:
	# Given an orphan feeding one branch of a fork: the orphan is unreachable, the join still matches
	doc = _fork_join(f.join("j"), extra_nodes=(f.set_("orphan"),), extra_edges=(f.edge("orphan", "a"),))
	assert codes(validate_definition(doc)) == ["unreachable"]


def test_malformed_switch_cases_are_left_to_shape_errors() -> None:
	doc = f.definition(
		f.start(),
		f.node("s", "switch", {"cases": ["x", {"id": 5, "condition": 3}]}),
		edges=[f.edge("start", "s")],
	)
	result = validate_definition(doc)
	assert set(codes(result)) == {"invalid_type"}
