"""What every resolver shares: the caller, argument checks that mirror REST, the JSON scalar."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from django.conf import settings
from graphene.types.generic import GenericScalar
from rest_framework import serializers

from workflows.errors import FieldError, NotFound, ValidationFailed
from workflows.models import Tenant, User
from workflows.selectors.definitions import parse_uuid

__all__ = ["DEFAULT_PAGE", "JSON", "caller", "camel_pointer", "page_size", "uuid_argument", "validated"]


DEFAULT_PAGE = 20
"""Rows in a page when ``first`` is left out."""


class JSON(GenericScalar):
	"""Any JSON value: an object, a list, a string, a number, a boolean or null."""


def caller(info: Any) -> tuple[User, Tenant]:
	"""The signed-in user and the tenant the request works in (the token's, or the session's).

	Raises:
		NotFound: the caller belongs to no organization, the same answer REST gives.
	"""
	request = info.context
	tenant = getattr(request, "tenant", None)
	if tenant is None:
		raise NotFound("You are not a member of any organization.")
	user = request.user
	assert isinstance(user, User), "the view lets only authenticated users through"
	return user, tenant


_SNAKE = re.compile(r"_([a-z0-9])")


def camel_pointer(pointer: str) -> str:
	"""A REST JSON pointer with its first segment named as the GraphQL argument (``/created_after`` -> ``/createdAfter``)."""
	head, _, rest = pointer.lstrip("/").partition("/")
	if not head:
		return pointer
	camel = _SNAKE.sub(lambda m: m.group(1).upper(), head)
	return "/" + camel + (f"/{rest}" if rest else "")


def _drf_errors(detail: Any, pointer: str = "") -> list[FieldError]:
	# DRF nests errors as {field: [messages]} and, for list items, {field: {index: [messages]}}.
	if isinstance(detail, Mapping):
		found: list[FieldError] = []
		for key, value in detail.items():
			sub = pointer if key in ("non_field_errors", "detail") else f"{pointer}/{key}"
			found.extend(_drf_errors(value, sub))
		return found
	items = detail if isinstance(detail, list) else [detail]
	return [FieldError(camel_pointer(pointer), str(item)) for item in items]


def validated(serializer_class: type[serializers.Serializer], **values: Any) -> dict[str, Any]:
	"""Check arguments with the REST endpoint's own request serializer, so both accept the same input.

	Arguments left out (None) are not sent. A refusal is a :class:`ValidationFailed` whose
	pointers name the GraphQL arguments.
	"""
	parsed = serializer_class(data={key: value for key, value in values.items() if value is not None})
	if not parsed.is_valid():
		errors = _drf_errors(parsed.errors)
		raise ValidationFailed(errors, "The arguments are invalid; see errors.")
	return dict(parsed.validated_data)


def page_size(first: int | None, default: int = DEFAULT_PAGE) -> int:
	"""``first`` when it is a page size this API serves (``default`` for null), else a clear refusal."""
	limit = settings.GRAPHQL_MAX_PAGE_SIZE
	if first is None:
		return min(default, limit)
	if not 1 <= first <= limit:
		raise ValidationFailed.single(
			"/first",
			f"first must be from 1 to {limit} (GRAPHQL_MAX_PAGE_SIZE); it was {first}.",
			"Ask for a smaller page and follow pageInfo.endCursor for the next one.",
		)
	return first


def uuid_argument(value: Any, *, pointer: str = "/id", noun: str = "id") -> UUID:
	"""``value`` as a UUID, or a refusal saying what an id looks like."""
	parsed = parse_uuid(value)
	if parsed is None:
		raise ValidationFailed.single(
			pointer,
			f"{value!r} is not a {noun}: ids are UUIDs.",
			"Use the id field of the object, e.g. 0190d1a2-7c3e-7b6f-9a51-2f0c4e8b1d23.",
		)
	return parsed
