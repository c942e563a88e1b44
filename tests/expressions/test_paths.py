"""The pure-Python fast path: what it accepts, what it answers, and that jq agrees."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workflows.expressions import ExpressionError, compile_expression
from workflows.expressions.expression import Expression
from workflows.expressions.paths import EMPTY, NeedsJq, PathExpression, parse_path
from workflows.expressions.worker import ProgramCache, run_program

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@pytest.mark.parametrize(
	("source", "variable", "steps", "optional", "try_before"),
	[
		(".", None, (), (), 0),
		(".a.b", None, ("a", "b"), (False, False), 0),
		('.a["k"]', None, ("a", "k"), (False, False), 0),
		(".a[0]", None, ("a", 0), (False, False), 0),
		(".a[-1]", None, ("a", -1), (False, False), 0),
		('.["a"]', None, ("a",), (False,), 0),
		(".[ 2 ]", None, (2,), (False,), 0),
		('."with space".x', None, ("with space", "x"), (False, False), 0),
		('.a.["b"].[0]', None, ("a", "b", 0), (False, False, False), 0),
		(".if.and", None, ("if", "and"), (False, False), 0),
		('.a["\\u00e9\\n"]', None, ("a", "é\n"), (False, False), 0),
		("$steps.fetch.output.body", "steps", ("fetch", "output", "body"), (False, False, False), 0),
		("$item", "item", (), (), 0),
		('$item["id"][0]', "item", ("id", 0), (False, False), 0),
		(".a?", None, ("a",), (True,), 0),
		(".a?.b", None, ("a", "b"), (True, False), 0),
		(".a.b?", None, ("a", "b"), (False, True), 0),
		(".a.b[0]??", None, ("a", "b", 0), (False, False, True), 3),
		(".?", None, (), (), 0),
		("$x?.a", "x", ("a",), (False,), 0),
	],
)
def test_plain_paths_take_the_fast_path(
	source: str,
	variable: str | None,
	steps: tuple[str | int, ...],
	optional: tuple[bool, ...],
	try_before: int,
) -> None:
	assert parse_path(source) == PathExpression(variable, steps, optional, try_before)
	assert compile_expression(source).is_fast_path


@pytest.mark.parametrize(
	"source",
	[
		"..",
		".a | .b",
		".a[]",
		".a[1:2]",
		".a[1.5]",
		".a[01]",
		".[1234567890]",
		". a",
		".a .b",
		'.a"b"',
		".a.",
		".?a",
		"$ENV.HOME",
		"$__loc__",
		"$mod::x",
		'.a["\\(1)"]',
		'.a["\\ud800"]',
		'."\\udc00"',
		"length",
		"1",
		"$",
		".-1",
	],
)
def test_everything_else_is_left_to_jq(source: str) -> None:
	assert parse_path(source) is None


def _parsed(source: str) -> PathExpression:
	path = parse_path(source)
	assert path is not None, source
	return path


def test_resolve_follows_objects_and_arrays() -> None:
	context = {"a": {"b": [10, 20, {"c": "deep"}]}}

	assert _parsed(".a.b[2].c").resolve(context) == "deep"
	assert _parsed(".a.b[-1].c").resolve(context) == "deep"
	assert _parsed(".a.b[3]").resolve(context) is None
	assert _parsed(".a.b[-4]").resolve(context) is None
	assert _parsed(".a.missing.deeper[0]").resolve(context) is None


def test_a_failing_step_defers_to_jq_unless_a_question_mark_covers_it() -> None:
	context = {"a": {"b": [1, 2]}}

	with pytest.raises(NeedsJq):
		_parsed(".a.b.c").resolve(context)
	with pytest.raises(NeedsJq):
		_parsed(".a.b?.c").resolve(context)
	with pytest.raises(NeedsJq):
		# As in jq, the "?" covers only the step right before it.
		_parsed(".a.b.c.d?").resolve(context)
	assert _parsed(".a.b.c?").resolve(context) is EMPTY
	assert _parsed(".a[0]?.b").resolve(context) is EMPTY
	assert _parsed(".a.b.c.d??").resolve(context) is EMPTY


def test_fast_path_errors_carry_jqs_own_message(context: dict[str, Any]) -> None:
	expression = compile_expression(".input.amount.cents")

	with pytest.raises(ExpressionError, match=r'Cannot index number with string \("cents"\)'):
		expression.evaluate(context)


# -- the fast path and jq agree --------------------------------------------------------------

_KEYS = st.sampled_from(["a", "b", "if", "x_1", "é", 'q"t', "", "sp ace", "~/", "\u2028", "0"]) | st.text(
	max_size=4
)
_SCALARS = (
	st.none()
	| st.booleans()
	| st.integers(-(2**53), 2**53)
	# jq holds numbers as doubles and prints large integral ones without an exponent; beyond
	# 2**53 that text no longer equals the double, so keep to the exactly representable range.
	| st.floats(min_value=-(2.0**53), max_value=2.0**53, allow_nan=False)
	| st.text(max_size=5)
)
_VALUES = st.recursive(
	_SCALARS,
	lambda children: st.lists(children, max_size=4) | st.dictionaries(_KEYS, children, max_size=4),
	max_leaves=12,
)
_CONTEXTS = st.dictionaries(
	st.sampled_from(["input", "steps", "item", "if", "x", "not-a-name"]), _VALUES, max_size=4
)


def _render(draw: st.DrawFn, key: str | int, *, after_root_dot: bool) -> str:
	literal = json.dumps(key, ensure_ascii=draw(st.booleans())) if isinstance(key, str) else str(key)
	forms = [f".[{literal}]", f".[ {literal} ]"]
	if isinstance(key, str):
		forms.append(f".{literal}")
		if _IDENTIFIER.fullmatch(key):
			forms.append(f".{key}")
	if not after_root_dot:
		forms.append(f"[{literal}]")
	form = draw(st.sampled_from(forms))
	# The input's root "." doubles as the first step's dot.
	return form[1:] if after_root_dot else form


@st.composite
def _path_cases(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
	context = draw(_CONTEXTS)
	names = sorted(name for name in context if _IDENTIFIER.fullmatch(name))
	if names and draw(st.booleans()):
		name = draw(st.sampled_from(names))
		source, value, after_root_dot = f"${name}", context[name], False
	else:
		source, value, after_root_dot = ".", context, True
	if draw(st.integers(0, 5)) == 0:
		source += "?"
		after_root_dot = False
	for _ in range(draw(st.integers(0, 4))):
		key: str | int
		if isinstance(value, dict) and value and draw(st.booleans()):
			key = draw(st.sampled_from(sorted(value)))
			value = value[key]
		elif isinstance(value, list) and value and draw(st.booleans()):
			key = draw(st.integers(-len(value), len(value) - 1))
			value = value[key]
		else:
			key = draw(_KEYS | st.integers(-3, 3))
			value = None
		source += _render(draw, key, after_root_dot=after_root_dot)
		after_root_dot = False
		source += draw(st.sampled_from(["", "", "", "", "?", "??"]))
	return context, source


_jq_programs = ProgramCache(4096)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_path_cases())
def test_fast_path_agrees_with_jq_exactly(case: tuple[dict[str, Any], str]) -> None:
	"""Same value, no output exactly where jq gives none, and a deferral exactly where jq fails."""
	context, source = case
	path = parse_path(source)
	assert path is not None, source

	jq_reply = run_program(
		_jq_programs.get(source, tuple(sorted(path.variables))), json.dumps(context), 1 << 20
	)
	try:
		fast = path.resolve(context)
	except NeedsJq:
		assert jq_reply[0] == "runtime", (source, jq_reply)
		return
	if fast is EMPTY:
		assert jq_reply == ("ok", None), (source, jq_reply)
	else:
		assert jq_reply[0] == "ok", (source, jq_reply)
		assert json.loads(jq_reply[1]) == fast, source


def _outcome(expression: Expression, context: dict[str, Any]) -> tuple[str, Any]:
	try:
		return ("ok", expression.evaluate(context, timeout=5.0))
	except ExpressionError as exc:
		return (type(exc).__name__, exc.message)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_path_cases())
def test_fast_path_and_sandbox_evaluate_identically(case: tuple[dict[str, Any], str]) -> None:
	context, source = case
	fast = compile_expression(source)
	sandboxed = Expression(fast.source, fast.variables)

	assert fast.is_fast_path
	assert not sandboxed.is_fast_path
	assert _outcome(fast, context) == _outcome(sandboxed, context)
