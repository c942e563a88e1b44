"""The errors a connector action raises, and how the engine reads them.

Every failure of an action reaches the engine as an :class:`ActionError` with a stable
``code``, a readable ``message`` (never a traceback), a ``retryable`` verdict that drives
the node's retry policy, and JSON-ready ``details``. Connectors raise
:class:`RetryableError` or :class:`PermanentError`; :func:`connectors.sdk.execute` turns
everything else into one of these.

Plain Python: no Django, so the engine's pure core can use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
	"ActionCancelled",
	"ActionError",
	"ActionTimeout",
	"PermanentError",
	"RetryableError",
]


def _restore(cls: type[ActionError], state: dict[str, Any]) -> ActionError:
	error = cls.__new__(cls)
	error.__dict__.update(state)
	error.args = (state.get("message", ""),)
	return error


class ActionError(Exception):
	"""An action failed.

	Args:
		message: What went wrong, for the person reading the run (no traceback).
		code: A stable, machine-readable reason (``http_status``, ``invalid_input``).
		retryable: Whether trying the same attempt again may succeed.
		details: JSON-ready facts about the failure (status code, field errors, ...).

	Attributes:
		message: See above.
		code: See above.
		retryable: See above.
		details: See above; an empty dict when none were given.
	"""

	def __init__(
		self,
		message: str,
		*,
		code: str = "action_error",
		retryable: bool,
		details: Mapping[str, Any] | None = None,
	) -> None:
		super().__init__(message)
		self.message = message
		self.code = code
		self.retryable = retryable
		self.details: dict[str, Any] = dict(details or {})

	def __str__(self) -> str:
		return self.message

	def __repr__(self) -> str:
		return f"{type(self).__name__}({self.message!r}, code={self.code!r}, retryable={self.retryable!r})"

	def to_dict(self) -> dict[str, Any]:
		"""The error as the engine records it on the step: ``{type, code, message, retryable, details}``."""
		return {
			"type": type(self).__name__,
			"code": self.code,
			"message": self.message,
			"retryable": self.retryable,
			"details": self.details,
		}

	def __reduce__(self) -> tuple[Any, ...]:
		# Keyword-only constructor arguments defeat Exception's default pickling, and Celery
		# pickles exceptions raised inside tasks.
		return (_restore, (type(self), self.__dict__.copy()))


class RetryableError(ActionError):
	"""A failure that may go away on its own: a dropped connection, a 503, a rate limit.

	Args:
		message: What went wrong.
		code: A stable reason; defaults to ``retryable_error``.
		details: JSON-ready facts; ``retry_after_seconds`` there tells the engine the
			earliest sensible retry.
	"""

	def __init__(
		self, message: str, *, code: str = "retryable_error", details: Mapping[str, Any] | None = None
	) -> None:
		super().__init__(message, code=code, retryable=True, details=details)


class PermanentError(ActionError):
	"""A failure that the same input will hit again: bad input, 404, a refused address.

	Args:
		message: What went wrong and, where possible, how to fix it.
		code: A stable reason; defaults to ``permanent_error``.
		details: JSON-ready facts about the failure.
	"""

	def __init__(
		self, message: str, *, code: str = "permanent_error", details: Mapping[str, Any] | None = None
	) -> None:
		super().__init__(message, code=code, retryable=False, details=details)


class ActionCancelled(ActionError):
	"""The action stopped because its run or step was cancelled. Never retried.

	Args:
		message: Why it stopped; defaults to the cancellation reason.
		details: JSON-ready facts.
	"""

	def __init__(
		self, message: str = "the action was cancelled", *, details: Mapping[str, Any] | None = None
	) -> None:
		super().__init__(message, code="cancelled", retryable=False, details=details)


class ActionTimeout(RetryableError):
	"""The action, or an operation inside it, ran out of time.

	Args:
		message: What timed out, and after how long.
		code: A stable reason; defaults to ``timeout``.
		details: JSON-ready facts, usually ``timeout_seconds``.
	"""

	def __init__(
		self, message: str, *, code: str = "timeout", details: Mapping[str, Any] | None = None
	) -> None:
		super().__init__(message, code=code, details=details)
