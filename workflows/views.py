"""Server-rendered pages: sign-in, the dashboard shell, tenant switching, tokens, members, audit."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from workflows.context import client_ip
from workflows.errors import NotFound, PermissionDenied, ServiceError
from workflows.http import TenantRequest
from workflows.models import AuditEvent
from workflows.permissions import membership_for
from workflows.roles import Perm, Role, role_allows
from workflows.selectors.tenancy import (
	ACTIVE_TENANT_SESSION_KEY,
	api_token_list,
	audit_event_list,
	member_list,
	tenant_list_for_user,
)
from workflows.services.tokens import api_token_create, api_token_revoke
from workflows.throttling import LoginThrottle

__all__ = ["LoginView", "audit_log", "dashboard", "members", "tenant_switch", "tokens"]


class LoginView(auth_views.LoginView):
	"""Django's sign-in page with lockout after repeated failures.

	A failed sign-in answers 401 with one message for a wrong username and a wrong
	password alike; a locked-out client gets 429 with Retry-After.
	"""

	template_name = "registration/login.html"
	redirect_authenticated_user = True
	logger = logging.getLogger("apg.auth")

	def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
		throttle = LoginThrottle(username=request.POST.get("username", ""), ip=client_ip.get())
		if throttle.is_locked():
			form = self.get_form()
			form.errors.clear()
			response = self.render_to_response(
				self.get_context_data(form=form, locked_out=True, retry_after=throttle.window), status=429
			)
			response["Retry-After"] = str(throttle.window)
			return response
		response = super().post(request, *args, **kwargs)
		if response.status_code == 302:
			throttle.reset()
			self._log_sign_in(request)
		else:
			throttle.record_failure()
			response.status_code = 401
		return response

	def _log_sign_in(self, request: HttpRequest) -> None:
		self.logger.info("signed in", extra={"user_id": str(request.user.pk)})


def _no_tenant(request: HttpRequest) -> HttpResponse:
	return render(request, "workflows/no_tenant.html", status=403)


@login_required
def dashboard(request: TenantRequest) -> HttpResponse:
	"""The home page: the active tenant, its members and the user's role."""
	tenant = request.tenant
	if tenant is None:
		return _no_tenant(request)
	user = request.user
	membership = membership_for(user=user, tenant=tenant)
	role = Role(membership.role) if membership is not None else Role.OWNER
	context = {
		"role": role,
		"member_count": member_list(actor=user, tenant=tenant).count(),
		"token_count": api_token_list(actor=user, tenant=tenant).filter(revoked_at__isnull=True).count(),
		"recent_events": (
			audit_event_list(actor=user, tenant=tenant)[:5] if role_allows(role, Perm.AUDIT_VIEW) else []
		),
	}
	return render(request, "workflows/dashboard.html", context)


@login_required
@require_POST
def tenant_switch(request: TenantRequest) -> HttpResponse:
	"""Make another of the user's tenants the active one."""
	tenant = tenant_list_for_user(user=request.user).filter(slug=request.POST.get("tenant", "")).first()
	if tenant is None:
		messages.error(request, "You are not a member of that organization.")
	else:
		request.session[ACTIVE_TENANT_SESSION_KEY] = str(tenant.pk)
		messages.success(request, f"Now working in {tenant.name}.")
	return redirect("dashboard")


class TokenForm(forms.Form):
	"""Create a token."""

	name = forms.CharField(max_length=100, help_text="Where the token is used, e.g. 'ci' or 'laptop'.")
	expires_in_days = forms.IntegerField(
		min_value=1, max_value=3650, initial=90, label="Expires after (days)", required=False
	)


@login_required
def tokens(request: TenantRequest) -> HttpResponse:
	"""List, create and revoke the user's API tokens in the active tenant."""
	tenant = request.tenant
	if tenant is None:
		return _no_tenant(request)
	user = request.user
	form = TokenForm(request.POST or None)
	new_token: str | None = None
	status = 200
	if request.method == "POST":
		if "revoke" in request.POST:
			try:
				api_token_revoke(actor=user, tenant=tenant, token_id=request.POST["revoke"])
				messages.success(request, "Token revoked.")
			except (NotFound, ValueError):
				messages.error(request, "No such token.")
			return HttpResponseRedirect(reverse("tokens"))
		if form.is_valid():
			days = form.cleaned_data.get("expires_in_days")
			try:
				issued = api_token_create(
					actor=user,
					tenant=tenant,
					name=form.cleaned_data["name"],
					expires_in=timedelta(days=days) if days else None,
				)
				new_token = issued.raw
				form = TokenForm()
			except ServiceError as exc:
				form.add_error(None, str(exc))
				status = 400
		else:
			status = 400
	context = {"form": form, "tokens": api_token_list(actor=user, tenant=tenant), "new_token": new_token}
	return render(request, "workflows/tokens.html", context, status=status)


@login_required
def members(request: TenantRequest) -> HttpResponse:
	"""The active tenant's members and roles."""
	tenant = request.tenant
	if tenant is None:
		return _no_tenant(request)
	return render(
		request,
		"workflows/members.html",
		{"members": member_list(actor=request.user, tenant=tenant)},
	)


@login_required
def audit_log(request: TenantRequest) -> HttpResponse:
	"""The active tenant's audit trail, filterable by action, object type and actor (admins)."""
	tenant = request.tenant
	if tenant is None:
		return _no_tenant(request)
	filters: dict[str, str | None] = {
		"action": request.GET.get("action", "").strip() or None,
		"object_type": request.GET.get("object_type", "").strip() or None,
	}
	try:
		events = audit_event_list(
			actor=request.user, tenant=tenant, action=filters["action"], object_type=filters["object_type"]
		)
	except PermissionDenied:
		return render(request, "workflows/forbidden.html", {"needed": "admin"}, status=403)
	page = Paginator(events, 50).get_page(request.GET.get("page"))
	actions = (
		AuditEvent.objects.for_tenant(tenant).order_by("action").values_list("action", flat=True).distinct()
	)
	return render(
		request, "workflows/audit.html", {"page": page, "filters": filters, "actions": list(actions)}
	)
