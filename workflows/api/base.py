"""The base every tenant API view inherits: it resolves the tenant and cannot be bypassed."""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.views import APIView

from workflows.errors import NotFound
from workflows.models import Tenant, User

__all__ = ["TenantAPIView"]


class TenantAPIView(APIView):
	"""An authenticated API view working in one tenant.

	The tenant is the token's (token auth) or the session's active one (browser). A request
	with neither is answered 404, the same as any other tenant's object.
	"""

	tenant: Tenant
	actor: User

	def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
		super().initial(request, *args, **kwargs)
		tenant = getattr(request._request, "tenant", None)
		if tenant is None:
			raise NotFound("You are not a member of any organization.")
		self.tenant = tenant
		assert isinstance(request.user, User), "IsAuthenticated runs before initial() returns"
		self.actor = request.user
