"""Fixtures for the contract test: an organization with one of everything the API can name."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from tests.api_runs.conftest import ORDER_SCHEMA, approval_flow
from tests.engine import conftest as engine_fixtures
from tests.engine.harness import linear, node, task
from workflows.context import tenant_scope
from workflows.models import Approval, Membership, StepRun, Tenant, User
from workflows.roles import Role
from workflows.services.definitions import (
	template_publish,
	workflow_create,
	workflow_publish,
	workflow_update,
)
from workflows.services.runs import run_start
from workflows.services.tokens import api_token_create
from workflows.services.triggers import trigger_create
from workflows.services.webhooks import webhook_create, webhook_ping

eager = engine_fixtures.eager
settle = engine_fixtures.settle


@dataclass(frozen=True)
class World:
	"""An organization with data, the owner's token, and real ids for each URL parameter."""

	tenant: Tenant
	token: str
	ids: dict[str, list[str]]


@pytest.fixture
def in_process_requests() -> Iterator[None]:
	"""Requests served in this thread keep the test's database connection.

	Django's ``close_old_connections`` runs when a response is closed, which the WSGI test
	client leaves to garbage collection: inside the test's transaction it would close the
	connection at some later, arbitrary moment and break the transaction. Django's own test
	client disconnects it the same way.
	"""
	request_started.disconnect(close_old_connections)
	request_finished.disconnect(close_old_connections)
	try:
		yield
	finally:
		request_started.connect(close_old_connections)
		request_finished.connect(close_old_connections)


@pytest.fixture
def world(
	tenant: Tenant,
	owner: User,
	member_factory: Callable[..., User],
	eager: None,
	settle: Callable[..., Any],
) -> World:
	"""A published workflow with two versions and draft history, a template, runs in every
	state the actions need (succeeded, waiting, failed, waiting for an approval), triggers,
	a second member, and a webhook subscription with a (never sent) delivery."""
	member_factory(tenant, Role.VIEWER)
	with tenant_scope(tenant):
		orders = workflow_create(
			actor=owner,
			tenant=tenant,
			name="Orders",
			slug="orders",
			definition=linear(task("work"), input_schema=ORDER_SCHEMA),
		)
		workflow_publish(actor=owner, workflow=orders)
		orders = workflow_update(
			actor=owner,
			workflow=orders,
			definition=linear(task("work"), task("file"), input_schema=ORDER_SCHEMA),
		)
		workflow_publish(actor=owner, workflow=orders, changelog="v2")
		waits = workflow_create(
			actor=owner, tenant=tenant, name="Waits", definition=linear(node("nap", "wait", duration="PT1H"))
		)
		workflow_publish(actor=owner, workflow=waits)
		fails = workflow_create(
			actor=owner,
			tenant=tenant,
			name="Fails",
			definition=linear(task("boom", "fail.fail", input={"code": "nope"})),
		)
		workflow_publish(actor=owner, workflow=fails)
		review = workflow_create(actor=owner, tenant=tenant, name="Review", definition=approval_flow())
		workflow_publish(actor=owner, workflow=review)
		template = template_publish(actor=owner, workflow=orders, category="Sales", industry="Retail")
		runs = [
			settle(run_start, actor=owner, workflow=orders, input={"order": "A-1"}, tags=["demo"]),
			settle(run_start, actor=owner, workflow=waits),
			settle(run_start, actor=owner, workflow=fails),
			settle(run_start, actor=owner, workflow=review),
		]
		cron = trigger_create(
			actor=owner,
			tenant=tenant,
			workflow=orders,
			name="nightly",
			kind="cron",
			cron_expression="0 3 * * *",
		)
		hook = trigger_create(actor=owner, tenant=tenant, workflow=orders, name="hook", kind="webhook")
		issued = api_token_create(actor=owner, tenant=tenant, name="contract")
		# Subscribed after the runs settled, and its ping never committed: nothing is sent.
		webhook = webhook_create(
			actor=owner, tenant=tenant, url="https://hooks.example.com/apg", event_types=["*"]
		).subscription
		delivery = webhook_ping(actor=owner, subscription=webhook)
		memberships = list(Membership.objects.for_tenant(tenant).values_list("pk", flat=True))
		steps = list(StepRun.objects.for_tenant(tenant).values_list("pk", flat=True))
		approvals = list(Approval.objects.for_tenant(tenant).values_list("pk", flat=True))
		workflows = [orders, waits, fails, review]
	assert approvals, "the review run waits for an approval"
	ids = {
		"workflow_id": [str(w.pk) for w in workflows] + [w.slug for w in workflows],
		"number": ["1", "2"],
		"template_id": [str(template.pk), template.slug],
		"run_id": [str(r.pk) for r in runs],
		"step_id": [str(pk) for pk in steps],
		"approval_id": [str(pk) for pk in approvals],
		"trigger_id": [str(cron.trigger.pk), str(hook.trigger.pk)],
		"token_id": [str(issued.token.pk)],
		"membership_id": [str(pk) for pk in memberships],
		"webhook_id": [str(webhook.pk)],
		"delivery_id": [str(delivery.pk)],
	}
	return World(tenant=tenant, token=issued.raw, ids=ids)
