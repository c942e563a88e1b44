"""Relay connections over keyset cursors, and loading a child field for a whole page at once.

A cursor names the list's ordering and the ordering values of the last row seen, so the
next page starts right after it even when rows were added meanwhile (an offset would skip or
repeat rows). Cursors are opaque to clients: base64 of a small JSON document.

Nested lists (a page of workflows, each with its runs) are read for every parent in one
query: objects resolved together remember their :class:`Siblings`, and the first child field
resolved on one of them loads the rows of all of them (see :func:`siblings`).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import reduce
from operator import or_
from typing import Any, TypeVar, cast
from uuid import UUID

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import F, Field, Model, Q, QuerySet, Window
from django.db.models.functions import RowNumber

from workflows.errors import ServiceError, ValidationFailed

__all__ = [
	"Edge",
	"Ordering",
	"Page",
	"PageInfo",
	"Siblings",
	"paginate",
	"paginate_each",
	"siblings",
	"together",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Ordering:
	"""A total order of a list (the last field is unique), named in its cursors."""

	name: str
	fields: tuple[str, ...]
	typed_as: tuple[str, ...] = ()
	"""The model fields whose types the cursor's values have, where ``fields`` names annotations."""

	def _values(self, row: Model) -> list[Any]:
		return [_plain(getattr(row, name.lstrip("-"))) for name in self.fields]

	def cursor(self, row: Model) -> str:
		"""The cursor just after ``row``."""
		document = json.dumps([self.name, self._values(row)], separators=(",", ":"))
		return base64.urlsafe_b64encode(document.encode()).decode().rstrip("=")

	def after(self, model: type[Model], cursor: str) -> Q:
		"""Rows after the one ``cursor`` names, in this order."""
		values = self._decode(model, cursor)
		conditions = []
		for index, name in enumerate(self.fields):
			equal = {self.fields[j].lstrip("-"): values[j] for j in range(index)}
			direction = "lt" if name.startswith("-") else "gt"
			conditions.append(Q(**equal, **{f"{name.lstrip('-')}__{direction}": values[index]}))
		return reduce(or_, conditions)

	def _decode(self, model: type[Model], cursor: str) -> list[Any]:
		try:
			padded = cursor + "=" * (-len(cursor) % 4)
			name, raw = json.loads(base64.urlsafe_b64decode(padded.encode()))
			if name != self.name or not isinstance(raw, list) or len(raw) != len(self.fields):
				raise ValueError(name)
			return [
				cast(Field, model._meta.get_field(field_name.lstrip("-"))).to_python(value)
				for field_name, value in zip(self.typed_as or self.fields, raw, strict=True)
			]
		except (ValueError, TypeError, binascii.Error, DjangoValidationError, UnicodeError):
			raise ValidationFailed.single(
				"/after",
				"The cursor is not one this list gave out (or it was made for another ordering).",
				"Pass pageInfo.endCursor (or an edge's cursor) from the same query with the same ordering.",
			) from None


def _plain(value: Any) -> Any:
	if isinstance(value, datetime | date):
		return value.isoformat()
	if isinstance(value, UUID):
		return str(value)
	return value


@dataclass(frozen=True, slots=True)
class PageInfo:
	"""Relay's page info."""

	has_next_page: bool
	has_previous_page: bool
	start_cursor: str | None
	end_cursor: str | None


@dataclass(frozen=True, slots=True)
class Edge:
	"""One row of a page and the cursor after it."""

	node: Any
	cursor: str


@dataclass(frozen=True, slots=True)
class Page:
	"""A Relay connection: ``edges`` and ``page_info``."""

	edges: list[Edge]
	page_info: PageInfo


def _page(rows: list[Any], ordering: Ordering, first: int, after: str | None) -> Page:
	has_next = len(rows) > first
	rows = rows[:first]
	edges = [Edge(node=row, cursor=ordering.cursor(row)) for row in rows]
	return Page(
		edges=edges,
		page_info=PageInfo(
			has_next_page=has_next,
			# Forward pagination only: rows before a cursor exist whenever one was given.
			has_previous_page=after is not None,
			start_cursor=edges[0].cursor if edges else None,
			end_cursor=edges[-1].cursor if edges else None,
		),
	)


def paginate(queryset: QuerySet[Any], *, ordering: Ordering, first: int, after: str | None) -> Page:
	"""One page of ``queryset`` (``first`` rows after the ``after`` cursor) in one query."""
	rows = queryset.order_by(*ordering.fields)
	if after is not None:
		rows = rows.filter(ordering.after(queryset.model, after))
	page = _page(list(rows[: first + 1]), ordering, first, after)
	together(edge.node for edge in page.edges)
	return page


def paginate_each(
	queryset: QuerySet[Any],
	*,
	parent_field: str,
	parents: Sequence[Any],
	ordering: Ordering,
	first: int,
	after: str | None,
) -> dict[Any, Page]:
	"""A page per parent (keyed by its id) in one query: the first rows of each, by a window function."""
	rows = queryset.filter(**{f"{parent_field}__in": list(parents)})
	if after is not None:
		rows = rows.filter(ordering.after(queryset.model, after))
	ranked = rows.annotate(
		rank_in_parent=Window(RowNumber(), partition_by=[F(parent_field)], order_by=list(ordering.fields))
	).filter(rank_in_parent__lte=first + 1)
	grouped: dict[Any, list[Any]] = {parent: [] for parent in parents}
	for row in ranked.order_by(*ordering.fields):
		grouped[getattr(row, parent_field)].append(row)
	pages = {parent: _page(found, ordering, first, after) for parent, found in grouped.items()}
	# Every parent's rows form one group, so their own children load in one query too.
	together(edge.node for page in pages.values() for edge in page.edges)
	return pages


@dataclass(eq=False, slots=True)
class Siblings:
	"""Objects resolved together (one page, one list): a child field loads for all of them at once."""

	objects: list[Any]
	_loaded: dict[Hashable, Any] = field(default_factory=dict)

	def load(self, key: Hashable, loader: Callable[[list[Any]], T]) -> T:
		"""``loader(objects)``, called once per ``key`` (a field and its arguments) for the group.

		A refusal is kept too: every object of the group gets the same error without asking again.
		"""
		if key not in self._loaded:
			try:
				self._loaded[key] = loader(self.objects)
			except ServiceError as exc:
				self._loaded[key] = exc
		found = self._loaded[key]
		if isinstance(found, ServiceError):
			raise found
		return found


_ATTRIBUTE = "_graphql_siblings"


def together(objects: Iterable[T]) -> list[T]:
	"""Mark ``objects`` as resolved together; returns them as a list."""
	items = list(objects)
	group = Siblings(items)
	for item in items:
		setattr(item, _ATTRIBUTE, group)
	return items


def siblings(obj: Any) -> Siblings:
	"""The group ``obj`` was resolved in (a group of one when it was fetched alone)."""
	group = getattr(obj, _ATTRIBUTE, None)
	if group is None:
		together([obj])
		group = getattr(obj, _ATTRIBUTE)
	return group
