"""API versioning: the ``API-Version`` header on every API response, and deprecation notices.

The policy is in docs/api_versioning.md. A view (or a route alias) that is going away is
marked with :func:`deprecated`; its responses then carry ``Deprecation`` (RFC 9745),
``Sunset`` (RFC 8594) and ``Link: <...>; rel="deprecation"`` headers, and the OpenAPI
document flags its operations as deprecated. A sunset is refused unless it lies at least
:data:`MIN_NOTICE_DAYS` after the announcement, so the promised notice cannot be shortened
by accident.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from typing import Any, TypeVar

from django.http import HttpRequest, HttpResponse
from drf_spectacular.utils import extend_schema

__all__ = [
	"API_VERSION",
	"API_VERSION_HEADER",
	"MIN_NOTICE_DAYS",
	"ApiVersionMiddleware",
	"Deprecation",
	"deprecated",
]

API_VERSION = "v1"
API_VERSION_HEADER = "API-Version"
# Six months: the shortest time between announcing a deprecation and removing the thing.
MIN_NOTICE_DAYS = 183

_View = TypeVar("_View", bound=type)


def _midnight(day: date) -> datetime:
	return datetime(day.year, day.month, day.day, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Deprecation:
	"""A deprecation notice: announced on ``announced``, removed on ``sunset``, explained at ``link``.

	Raises:
		ValueError: the sunset is less than MIN_NOTICE_DAYS after the announcement, or the
			link is not an absolute http(s) URL.
	"""

	announced: date
	sunset: date
	link: str
	successor: str | None = None  # the path to use instead, e.g. "/api/v1/runs/bulk/cancel/"

	def __post_init__(self) -> None:
		if self.sunset < self.announced + timedelta(days=MIN_NOTICE_DAYS):
			raise ValueError(
				f"A sunset on {self.sunset} is less than {MIN_NOTICE_DAYS} days after the deprecation "
				f"announced on {self.announced}; the versioning policy promises at least six months."
			)
		if not self.link.startswith(("https://", "http://")):
			raise ValueError(f"The deprecation link {self.link!r} must be an absolute http(s) URL.")

	def headers(self) -> dict[str, str]:
		"""The response headers announcing this deprecation."""
		links = [f'<{self.link}>; rel="deprecation"; type="text/html"']
		if self.successor:
			links.append(f'<{self.successor}>; rel="successor-version"')
		return {
			# RFC 9745: a Structured Field Date, "@" and seconds since the epoch.
			"Deprecation": f"@{int(_midnight(self.announced).timestamp())}",
			# RFC 8594: an HTTP-date.
			"Sunset": format_datetime(_midnight(self.sunset), usegmt=True),
			"Link": ", ".join(links),
		}


def deprecated(
	*, announced: date, sunset: date, link: str, successor: str | None = None
) -> Callable[[_View], _View]:
	"""Class decorator marking an API view deprecated: response headers and the OpenAPI flag.

	Use it on a subclass to deprecate one route alias of a view that stays::

		@deprecated(announced=date(2026, 1, 5), sunset=date(2026, 7, 6), link="https://...")
		class OldRunCancelView(RunCancelView):
			pass
	"""
	notice = Deprecation(announced=announced, sunset=sunset, link=link, successor=successor)

	def mark(view: _View) -> _View:
		view.deprecation = notice
		return extend_schema(deprecated=True)(view)

	return mark


class ApiVersionMiddleware:
	"""Add ``API-Version`` to every /api/ response, and a deprecated view's notice headers."""

	def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
		self.get_response = get_response

	def __call__(self, request: HttpRequest) -> HttpResponse:
		response = self.get_response(request)
		if not request.path.startswith("/api/"):
			return response
		response[API_VERSION_HEADER] = API_VERSION
		notice = _deprecation_of(request)
		if notice is not None:
			for name, value in notice.headers().items():
				# Keep any Link the view set (pagination, say) next to the deprecation's.
				existing = response.get(name) if name == "Link" else None
				response[name] = f"{existing}, {value}" if existing else value
		return response


def _deprecation_of(request: HttpRequest) -> Deprecation | None:
	match = getattr(request, "resolver_match", None)
	view_class: Any = getattr(match.func, "view_class", None) if match is not None else None
	notice = getattr(view_class, "deprecation", None)
	return notice if isinstance(notice, Deprecation) else None
