"""Template context: the active tenant and the user's other tenants, for the page shell."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from workflows.selectors.tenancy import tenant_list_for_user

__all__ = ["tenancy"]


def tenancy(request: HttpRequest) -> dict[str, Any]:
	"""``tenant`` and ``tenants`` for signed-in users."""
	user = getattr(request, "user", None)
	if user is None or not user.is_authenticated:
		return {}
	return {
		"tenant": getattr(request, "tenant", None),
		"tenants": lambda: list(tenant_list_for_user(user=user)),  # type: ignore[arg-type]
	}
