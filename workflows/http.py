"""Typing for requests that went through the authentication and tenant middleware."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.http import HttpRequest

if TYPE_CHECKING:
	from workflows.models import Tenant, User

__all__ = ["TenantRequest", "bind_token_tenant", "set_request_tenant"]


class TenantRequest(HttpRequest):
	"""A request of a signed-in user (pages behind ``login_required``) with its active tenant."""

	user: User
	tenant: Tenant | None


def set_request_tenant(request: HttpRequest, tenant: Tenant | None) -> None:
	"""Attach the tenant the request works in (read back as ``request.tenant``)."""
	request.tenant = tenant  # pyright: ignore[reportAttributeAccessIssue]


def bind_token_tenant(request: HttpRequest, tenant: Tenant) -> None:
	"""Make an API token's tenant the one the request works in, for views and managers alike.

	TenantMiddleware resets the context binding at the end of the request.
	"""
	from workflows import context

	set_request_tenant(request, tenant)
	context._tenant.set(tenant)
