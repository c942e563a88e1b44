"""The logic a sandbox process runs, exercised in this process.

The sandbox calls these same functions; running them here lets coverage see them and keeps
these tests free of process start-up time. Only expressions that terminate quickly belong here.
"""

from __future__ import annotations

import json
import threading
from multiprocessing import Pipe
from typing import Any

import pytest

from workflows.expressions import worker
from workflows.expressions.worker import (
	MAX_COUNTED_OUTPUTS,
	JqCompileError,
	ProgramCache,
	analyze,
	handle,
	readable_compile_error,
	run_program,
	serve,
	wrap,
)

CONTEXT = json.dumps({"input": {"items": [1, 2, 3], "name": "Ada"}, "steps": {}})


def _eval(source: str, context_json: str = CONTEXT, max_output_bytes: int = 1 << 20) -> tuple[Any, ...]:
	cache = ProgramCache(8)
	variables = handle(("compile", source), cache)[1]
	return handle(("eval", source, variables, context_json, max_output_bytes), cache)


def test_analyze_finds_the_variables_an_expression_reads() -> None:
	assert analyze("$input.items | map(. * $factor)") == ("factor", "input")
	assert analyze(".input as $x | $x") == ()
	assert analyze("reduce .[] as $i (0; . + $i)") == ()
	assert analyze("$__loc__ | .line") == ()
	assert analyze("[$a, ($b | tostring)] | map(. + $c) | def g(f): f; g($d) + $e") == (
		"a",
		"b",
		"c",
		"d",
		"e",
	)


def test_analyze_names_syntax_errors_in_plain_words() -> None:
	with pytest.raises(JqCompileError) as caught:
		analyze('.a | "unterminated')

	assert caught.value.message == "jq: error: unterminated string literal at line 1, column 7"


def test_analyze_reports_undefined_functions_with_position() -> None:
	with pytest.raises(JqCompileError, match=r"^jq: error: foo/0 is not defined at line 1, column 6$"):
		analyze(".x | foo")


def test_analyze_refuses_modules() -> None:
	with pytest.raises(JqCompileError, match="module not found"):
		analyze('import "a" as $a; $a')


@pytest.mark.parametrize(
	("raw", "readable"),
	[
		(
			"jq: error: syntax error, unexpected INVALID_CHARACTER (Unix shell quoting issues?) at <top-level>, line 1, column 4:\n"
			"    .a ` 1\n       ^\njq: 1 compile error",
			"jq: error: syntax error, unexpected invalid character at line 1, column 4",
		),
		(
			"jq: error: syntax error, unexpected QQSTRING_INTERP_END at <top-level>, line 2:\n  x\njq: 1 compile error",
			"jq: error: syntax error, unexpected ')' closing a string interpolation at line 2",
		),
		(
			"jq: error: syntax error, unexpected IDENT, expecting $end at <top-level>, line 1, column 4:\n",
			"jq: error: syntax error, unexpected name, expecting end of expression at line 1, column 4",
		),
		("something jq never printed", "something jq never printed"),
		("", "jq rejected the expression"),
		(
			"jq: error: $x is not defined at <top-level>, line 1, column 1:\n$x\njq: 1 compile error",
			"jq: error: $x is not defined",
		),
	],
)
def test_compile_errors_become_one_readable_line(raw: str, readable: str) -> None:
	assert readable_compile_error(raw) == readable


def test_wrap_binds_free_variables_from_the_input() -> None:
	assert wrap(".a", ()) == ".a"
	assert wrap("$input.a # note \\", ("input",)) == '. as {"input": $input} | ($input.a # note \\\n\n)'


def test_a_trailing_comment_does_not_swallow_the_wrapper() -> None:
	assert _eval("$input.name # trailing comment \\") == ("ok", '"Ada"')


@pytest.mark.parametrize(
	("source", "reply"),
	[
		("$input.items | map(. * 2)", ("ok", "[2,4,6]")),
		(".input.name | ascii_upcase", ("ok", '"ADA"')),
		("empty", ("ok", None)),
		("null", ("ok", "null")),
		(".input.items[]", ("multiple", 3, False)),
		("range(5000)", ("multiple", MAX_COUNTED_OUTPUTS, True)),
		("null | keys", ("runtime", "jq: error: null (null) has no keys")),
		('error("boom")', ("runtime", "jq: error: boom")),
		('1, error("late")', ("runtime", "jq: error: late")),
		('"é" * 10', ("ok", '"éééééééééé"')),
		("$__loc__.line", ("ok", "1")),
	],
)
def test_evaluation_replies(source: str, reply: tuple[Any, ...]) -> None:
	assert _eval(source) == reply


def test_output_size_is_measured_as_utf8_json() -> None:
	assert _eval('"é" * 10', max_output_bytes=22) == ("ok", '"éééééééééé"')
	assert _eval('"é" * 10', max_output_bytes=21) == ("too_large", 22)


def test_compile_request_reports_syntax_errors() -> None:
	assert handle(("compile", "[1,"), ProgramCache(2)) == (
		"syntax",
		"jq: error: syntax error, unexpected end of expression at line 1, column 3",
	)


def test_eval_of_an_invalid_program_reports_syntax() -> None:
	reply = handle(("eval", "[1,", (), CONTEXT, 100), ProgramCache(2))

	assert reply[0] == "syntax"


def test_unknown_requests_get_a_protocol_reply() -> None:
	assert handle(("explode",), ProgramCache(2)) == ("protocol", "unknown request ('explode',)")


def test_memory_errors_are_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
	def exhausted(*_: object) -> tuple[Any, ...]:
		raise MemoryError

	monkeypatch.setattr(worker, "run_program", exhausted)

	assert handle(("eval", ".", (), "{}", 100), ProgramCache(2))[0] == "memory"


def test_program_cache_keeps_the_most_recently_used() -> None:
	cache = ProgramCache(2)
	first = cache.get(".a", ())
	cache.get(".b", ())
	assert cache.get(".a", ()) is first
	cache.get(".c", ())

	assert len(cache) == 2
	assert cache.get(".a", ()) is first  # ".b" was the least recently used and went


def test_run_program_on_a_compiled_program() -> None:
	program = ProgramCache(1).get("$input.items | add", ("input",))

	assert run_program(program, CONTEXT, 100) == ("ok", "6")


def _serve_in_thread(requests: list[Any], *, before_request: Any = None) -> list[Any]:
	parent, child = Pipe()
	thread = threading.Thread(
		target=serve, args=(child, ProgramCache(4)), kwargs={"before_request": before_request}
	)
	thread.start()
	replies = [parent.recv()]
	for request in requests:
		parent.send(request)
		if request is not None:
			replies.append(parent.recv())
	thread.join(5)
	assert not thread.is_alive()
	return replies


def test_serve_announces_itself_answers_and_stops_on_none() -> None:
	calls: list[int] = []
	replies = _serve_in_thread(
		[("compile", "$input.name"), ("eval", "$input.name", ("input",), CONTEXT, 100), None],
		before_request=lambda: calls.append(1),
	)

	assert replies[0][0] == "ready"
	assert replies[1:] == [("compiled", ("input",)), ("ok", '"Ada"')]
	assert calls == [1, 1]


def test_serve_stops_after_running_out_of_memory(monkeypatch: pytest.MonkeyPatch) -> None:
	monkeypatch.setattr(worker, "handle", lambda *_: ("memory", "ran out of memory"))

	replies = _serve_in_thread([("eval", ".", (), "{}", 10)])

	assert replies[1] == ("memory", "ran out of memory")


def test_serve_stops_when_the_parent_goes_away() -> None:
	parent, child = Pipe()
	thread = threading.Thread(target=serve, args=(child, ProgramCache(1)))
	thread.start()
	parent.recv()
	parent.close()
	thread.join(5)

	assert not thread.is_alive()


def test_serve_stops_when_it_cannot_reply(monkeypatch: pytest.MonkeyPatch) -> None:
	parent, child = Pipe()
	original_send = child.send
	sent: list[Any] = []

	def send(reply: Any) -> None:
		if sent:
			raise BrokenPipeError
		sent.append(reply)
		original_send(reply)

	monkeypatch.setattr(child, "send", send)
	thread = threading.Thread(target=serve, args=(child, ProgramCache(1)))
	thread.start()
	parent.recv()
	parent.send(("compile", "."))
	thread.join(5)

	assert not thread.is_alive()
