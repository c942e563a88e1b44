"""The code a sandbox process runs: compile jq, evaluate it, bound and serialize the result.

Everything but :func:`child_main` and its hardening helpers is a plain function of its
arguments, so tests exercise the exact logic the sandbox runs without starting a process.

Protocol, one request and one reply at a time over a :class:`multiprocessing.connection.Connection`:

* the process first sends ``("ready", pid)``;
* ``("compile", source)`` → ``("compiled", variables)`` or ``("syntax", message)``;
* ``("eval", source, variables, context_json, max_output_bytes)`` → ``("ok", json_text | None)``,
  ``("runtime", message)``, ``("multiple", count, more)``, ``("too_large", size)`` or
  ``("syntax", message)``;
* any request may get ``("memory", message)``, after which the process exits;
* ``None`` (or a closed pipe) ends the process.

Variables reach jq without recompiling per context: the program is wrapped as
``. as {"input": $input, ...} | (source)``, binding each free variable from the input object.
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Final

import jq

__all__ = [
	"MAX_COUNTED_OUTPUTS",
	"JqCompileError",
	"ProgramCache",
	"WorkerSettings",
	"analyze",
	"child_main",
	"dump_json",
	"handle",
	"readable_compile_error",
	"run_program",
	"serve",
	"wrap",
]

MAX_COUNTED_OUTPUTS: Final = 1000
"""Counting the outputs of an expression that yields many stops here."""

_ERROR_LINE = re.compile(
	r"^jq: error: (?P<message>.*?)(?: at <top-level>, line (?P<line>\d+)(?:, column (?P<column>\d+))?:)?$"
)
_UNDEFINED_VARIABLE = re.compile(r"\$(?P<name>[A-Za-z_][A-Za-z0-9_]*) is not defined")
_SHELL_HINT = re.compile(r"\s*\((?:Unix|Windows)[^)]*quoting issues\?\)")
_TOKENS: Final = {
	"end of file": "end of expression",
	"$end": "end of expression",
	"INVALID_CHARACTER": "invalid character",
	"QQSTRING_INTERP_START": '"\\("',
	"QQSTRING_INTERP_END": "')' closing a string interpolation",
	"QQSTRING_START": "string",
	"QQSTRING_TEXT": "string text",
	"QQSTRING_END": "closing '\"'",
	"IDENT": "name",
	"FIELD": "field",
	"BINDING": "$variable",
	"LITERAL": "number",
	"FORMAT": "@format",
}
_TOKEN_PATTERN = re.compile("|".join(rf"(?<![\w$]){re.escape(token)}(?!\w)" for token in _TOKENS))


_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class JqCompileError(ValueError):
	"""jq rejected a program; ``message`` is already readable."""

	def __init__(self, message: str) -> None:
		super().__init__(message)
		self.message = message


@dataclass(frozen=True, slots=True)
class WorkerSettings:
	"""What a sandbox process needs to know about its limits."""

	memory_bytes: int
	cpu_seconds: int
	cache_size: int


def _readable(message: str) -> str:
	if "unexpected end of file" in message and "QQSTRING" in message:
		return "unterminated string literal"
	message = _SHELL_HINT.sub("", message)
	return _TOKEN_PATTERN.sub(lambda match: _TOKENS[match.group()], message)


def _parse_compile_errors(text: str) -> tuple[set[str], list[str]]:
	variables: set[str] = set()
	problems: list[str] = []
	for line in text.splitlines():
		match = _ERROR_LINE.match(line)
		if match is None:
			continue
		message = match.group("message")
		if undefined := _UNDEFINED_VARIABLE.fullmatch(message):
			variables.add(undefined.group("name"))
			continue
		problem = f"jq: error: {_readable(message)}"
		if match.group("line"):
			problem += f" at line {match.group('line')}"
			if match.group("column"):
				problem += f", column {match.group('column')}"
		problems.append(problem)
	if not variables and not problems:
		problems.append(text.strip().partition("\n")[0] or "jq rejected the expression")
	return variables, problems


def readable_compile_error(text: str) -> str:
	"""Turn jq's multi-line compile error report into one readable line.

	Args:
		text: The message of the ``ValueError`` jq raised.

	Returns:
		Each error as ``jq: error: <problem> at line L, column C``, joined by ``; ``, with
		parser token names (``QQSTRING_END``) replaced by words.
	"""
	variables, problems = _parse_compile_errors(text)
	problems.extend(f"jq: error: ${name} is not defined" for name in sorted(variables))
	return "; ".join(problems)


def analyze(source: str) -> tuple[str, ...]:
	"""Check that ``source`` compiles and find the variables it expects from the context.

	Args:
		source: jq source.

	Returns:
		The free variables (``$input`` → ``"input"``), sorted.

	Raises:
		JqCompileError: The source is not valid jq, or calls an undefined function.
	"""
	variables: set[str] = set()
	# jq stops reporting undefined variables at the first pipe stage that has one, so bind
	# what it found and ask again; each round finds a new variable, so this ends.
	while True:
		try:
			jq.compile(source, args=dict.fromkeys(variables))
		except ValueError as exc:
			found, problems = _parse_compile_errors(str(exc))
			if problems or found <= variables:
				raise JqCompileError("; ".join(problems) or readable_compile_error(str(exc))) from None
			variables |= found
		else:
			return tuple(sorted(variables))


def wrap(source: str, variables: tuple[str, ...]) -> str:
	"""Wrap ``source`` so its free ``variables`` are bound from the input object.

	The wrapper shares the first line with the source, so ``$__loc__`` keeps its line number;
	the closing parenthesis sits two lines down so a trailing comment, even one ending in a
	continuing backslash, cannot swallow it.
	"""
	if not variables:
		return source
	bindings = ", ".join(f'"{name}": ${name}' for name in variables)
	return f". as {{{bindings}}} | ({source}\n\n)"


class ProgramCache:
	"""A bounded LRU of compiled jq programs, one per sandbox process."""

	def __init__(self, size: int) -> None:
		self._size = size
		self._programs: OrderedDict[tuple[str, tuple[str, ...]], Any] = OrderedDict()

	def __len__(self) -> int:
		return len(self._programs)

	def get(self, source: str, variables: tuple[str, ...]) -> Any:
		"""The compiled program for ``source`` with ``variables`` bound from the input.

		Raises:
			JqCompileError: jq rejects the program.
		"""
		key = (source, variables)
		program = self._programs.get(key)
		if program is not None:
			self._programs.move_to_end(key)
			return program
		try:
			program = jq.compile(wrap(source, variables))
		except ValueError as exc:
			raise JqCompileError(readable_compile_error(str(exc))) from None
		self._programs[key] = program
		if len(self._programs) > self._size:
			self._programs.popitem(last=False)
		return program


def dump_json(value: Any) -> str:
	"""Serialize ``value`` as compact JSON: the form output sizes are measured in.

	Raises:
		TypeError: The value holds something JSON cannot represent.
		ValueError: The value holds NaN or an infinity.
	"""
	return _ENCODER.encode(value)


def run_program(program: Any, context_json: str, max_output_bytes: int) -> tuple[Any, ...]:
	"""Evaluate a compiled program on a JSON context and shape the reply.

	Args:
		program: A program from :class:`ProgramCache`.
		context_json: The context, serialized as JSON.
		max_output_bytes: Largest result allowed, as compact UTF-8 JSON.

	Returns:
		A reply tuple (see the module docstring).
	"""
	first: Any = None
	count = 0
	try:
		for value in program.input_text(context_json):
			count += 1
			if count == 1:
				first = value
			elif count > MAX_COUNTED_OUTPUTS:
				return ("multiple", MAX_COUNTED_OUTPUTS, True)
	except ValueError as exc:
		return ("runtime", f"jq: error: {exc}")
	if count > 1:
		return ("multiple", count, False)
	if count == 0:
		return ("ok", None)
	text = dump_json(first)
	size = len(text.encode("utf-8"))
	if size > max_output_bytes:
		return ("too_large", size)
	return ("ok", text)


def handle(request: tuple[Any, ...], cache: ProgramCache) -> tuple[Any, ...]:
	"""Answer one request from the parent.

	Args:
		request: ``("compile", source)`` or ``("eval", source, variables, context_json, max_output_bytes)``.
		cache: This process's compiled programs.

	Returns:
		The reply tuple.
	"""
	try:
		match request:
			case ("compile", str() as source):
				variables = analyze(source)
				cache.get(source, variables)
				return ("compiled", variables)
			case (
				"eval",
				str() as source,
				tuple() as variables,
				str() as context_json,
				int() as max_output_bytes,
			):
				return run_program(cache.get(source, variables), context_json, max_output_bytes)
			case _:
				return ("protocol", f"unknown request {request[:1]!r}")
	except JqCompileError as exc:
		return ("syntax", exc.message)
	except MemoryError:
		return ("memory", "ran out of memory")


def serve(conn: Connection, cache: ProgramCache, *, before_request: Callable[[], None] | None = None) -> None:
	"""Announce readiness, then answer requests until told to stop or the pipe closes.

	Args:
		conn: This process's end of the pipe.
		cache: Compiled programs, kept across requests.
		before_request: Called before each request (the sandbox re-arms its CPU limit).
	"""
	conn.send(("ready", os.getpid()))
	while True:
		try:
			request = conn.recv()
		except (EOFError, OSError):
			return
		if request is None:
			return
		if before_request is not None:
			before_request()
		reply = handle(request, cache)
		try:
			conn.send(reply)
		except OSError:
			return
		if reply[0] == "memory":
			# A MemoryError can leave any object half-built; start afresh.
			return


def _lower_limit(kind: int, soft: int) -> None:  # pragma: no cover - sandbox process only
	_, hard = resource.getrlimit(kind)
	if hard != resource.RLIM_INFINITY:
		soft = min(soft, hard)
	resource.setrlimit(kind, (soft, hard if kind == resource.RLIMIT_CPU else soft))


def _arm_cpu_backstop(cpu_seconds: int) -> None:  # pragma: no cover - sandbox process only
	# RLIMIT_CPU counts the whole life of the process, so move the ceiling before every
	# request: each one may use ``cpu_seconds`` more, and the kernel stops a runaway that
	# outlives its parent.
	usage = resource.getrusage(resource.RUSAGE_SELF)
	_lower_limit(resource.RLIMIT_CPU, int(usage.ru_utime + usage.ru_stime) + 1 + cpu_seconds)


def _harden(settings: WorkerSettings) -> None:  # pragma: no cover - sandbox process only
	# Ctrl-C reaches the whole process group; the parent decides when sandboxes stop.
	signal.signal(signal.SIGINT, signal.SIG_IGN)
	# jq's env and $ENV read the process environment, which holds the server's credentials.
	os.environ.clear()
	# debug and stderr let an expression write to stderr: keep user data out of server logs.
	devnull = os.open(os.devnull, os.O_WRONLY)
	os.dup2(devnull, 1)
	os.dup2(devnull, 2)
	os.close(devnull)
	_lower_limit(resource.RLIMIT_CORE, 0)
	_lower_limit(resource.RLIMIT_AS, settings.memory_bytes)


def child_main(conn: Connection, settings: WorkerSettings) -> None:  # pragma: no cover - sandbox process only
	"""Entry point of a sandbox process: harden it, then :func:`serve` the parent."""
	_harden(settings)
	serve(
		conn,
		ProgramCache(settings.cache_size),
		before_request=lambda: _arm_cpu_backstop(settings.cpu_seconds),
	)
