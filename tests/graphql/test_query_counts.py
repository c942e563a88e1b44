"""No N+1: nested lists cost the same number of SQL queries for 2 rows as for 10."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from tests.engine.harness import linear, node, task
from tests.graphql.conftest import Reply, post
from workflows.models import Tenant, User, Workflow
from workflows.services.runs import run_retry, run_start

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager")]

NESTED = """{
  workflows(first: 20) { edges { node {
    slug tags versions(first: 5) { edges { node { number workflow { slug } } } }
    runs(first: 5) { edges { node {
      status startedBy versionNumber version { number } workflow { slug }
      steps { key status attemptCount run { id } attempts { attempt status } }
      events(first: 3) { seq type }
    } } }
  } } }
}"""


def _measure(client: APIClient, query: str) -> tuple[int, Reply]:
	with CaptureQueriesContext(connection) as captured:
		reply = post(client, query)
	return len(captured.captured_queries), reply


@pytest.fixture
def grow(publish: Callable[..., Workflow], owner: User, settle: Callable[..., Any]) -> Callable[[int], None]:
	"""Add workflows until there are ``n``, each with two runs: one that succeeded, one retried."""
	made: list[Workflow] = []

	def to(n: int) -> None:
		while len(made) < n:
			workflow = publish(
				linear(task("work"), task("boom", "fail.fail", input={"code": "no"})),
				name=f"Flow {len(made)}",
			)
			settle(run_start, actor=owner, workflow=workflow)
			failed = settle(run_start, actor=owner, workflow=workflow)
			settle(run_retry, actor=owner, run=failed)
			made.append(workflow)

	return to


def test_workflows_runs_steps_cost_the_same_for_2_and_10_rows(
	grow: Callable[[int], None],
	owner: User,
	tenant: Tenant,
	token_client: Callable[[User, Tenant], APIClient],
) -> None:
	client = token_client(owner, tenant)
	post(client, "{ viewer { username } }")  # the token's once-a-minute bookkeeping write

	grow(2)
	few, few_reply = _measure(client, NESTED)
	grow(10)
	many, many_reply = _measure(client, NESTED)

	assert few == many, f"{few} queries for 2 workflows, {many} for 10"
	workflows = [edge["node"] for edge in many_reply.ok()["workflows"]["edges"]]
	assert len(workflows) == 10
	assert len(few_reply.ok()["workflows"]["edges"]) == 2
	runs = [edge["node"] for w in workflows for edge in w["runs"]["edges"]]
	assert len(runs) == 20
	assert all(len(run["steps"]) == 3 and len(run["events"]) == 3 for run in runs)
	assert (
		sorted(step["attemptCount"] for run in runs for step in run["steps"] if step["key"] == "root:boom")
		== [1] * 10 + [2] * 10
	)


def test_a_run_list_with_steps_costs_the_same_for_2_and_10_runs(
	publish: Callable[..., Workflow],
	owner: User,
	tenant: Tenant,
	settle: Callable[..., Any],
	token_client: Callable[[User, Tenant], APIClient],
) -> None:
	client = token_client(owner, tenant)
	post(client, "{ viewer { username } }")
	workflow = publish(linear(task("work"), node("nap", "wait", duration="PT1H")), name="Waits")
	query = (
		"{ runs(first: 50) { edges { node { startedBy workflow { slug } steps { key } events { seq } } } } }"
	)

	for _ in range(2):
		settle(run_start, actor=owner, workflow=workflow)
	few, _ = _measure(client, query)
	for _ in range(8):
		settle(run_start, actor=owner, workflow=workflow)
	many, reply = _measure(client, query)

	assert few == many
	assert len(reply.ok()["runs"]["edges"]) == 10
