"""The expression engine: jq expressions (``${ ... }``) inside workflow definitions.

Pure Python, no Django. Plain paths (``$steps.fetch.output.body``) are answered in-process;
everything else runs in sandbox processes that can be killed, under the limits in
:class:`Limits`. See :func:`compile_expression`, :func:`compile_template` and
:func:`build_context`; secrets travel as ``secret://`` markers (:mod:`.secrets`).
"""

from workflows.expressions.context import STANDARD_KEYS, build_context, to_json_value
from workflows.expressions.errors import (
	ExpressionError,
	ExpressionMultipleValues,
	ExpressionOutputTooLarge,
	ExpressionRuntimeError,
	ExpressionSandboxError,
	ExpressionSyntaxError,
	ExpressionTimeout,
	UnknownSecretError,
)
from workflows.expressions.expression import (
	CacheInfo,
	Expression,
	clear_compile_cache,
	compile_cache_info,
	compile_expression,
)
from workflows.expressions.limits import Limits, configure, current_limits
from workflows.expressions.sandbox import shutdown
from workflows.expressions.secrets import (
	REDACTED,
	SECRET_SCHEME,
	find_secret_refs,
	redact,
	resolve_secret_refs,
	secret_marker,
	secret_markers,
)
from workflows.expressions.templates import Template, compile_template

__all__ = [
	"REDACTED",
	"SECRET_SCHEME",
	"STANDARD_KEYS",
	"CacheInfo",
	"Expression",
	"ExpressionError",
	"ExpressionMultipleValues",
	"ExpressionOutputTooLarge",
	"ExpressionRuntimeError",
	"ExpressionSandboxError",
	"ExpressionSyntaxError",
	"ExpressionTimeout",
	"Limits",
	"Template",
	"UnknownSecretError",
	"build_context",
	"clear_compile_cache",
	"compile_cache_info",
	"compile_expression",
	"compile_template",
	"configure",
	"current_limits",
	"find_secret_refs",
	"redact",
	"resolve_secret_refs",
	"secret_marker",
	"secret_markers",
	"shutdown",
	"to_json_value",
]
