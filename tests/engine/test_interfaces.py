"""run_workflow --follow, the run-events WebSocket (resume after N, nothing missed), run selectors."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.core.management import CommandError, call_command
from django.db import connections

from config.routing import websocket_urlpatterns
from tests.engine.harness import END, START, definition, linear, node, task
from workflows.context import tenant_scope
from workflows.engine.effects import run_group
from workflows.engine.status import RunStatus
from workflows.errors import NotFound
from workflows.models import Membership, Run, RunEvent, Tenant, User, Workflow
from workflows.roles import Role
from workflows.selectors.runs import approval_inbox, run_events_after, run_get, run_list, run_steps
from workflows.services.runs import run_start
from workflows.services.tokens import api_token_create
from workflows.ws_auth import tenant_auth_stack

pytestmark = pytest.mark.django_db


def _command(*args: str) -> str:
	out = io.StringIO()
	call_command("run_workflow", *args, stdout=out)
	return out.getvalue()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("eager")
def test_run_workflow_follow_shows_progress_and_the_output(
	publish: Callable[..., Workflow], tenant: Tenant
) -> None:
	publish(
		linear(
			task("a", "noop.noop", input={"value": 1}), node("b", "set", values={"sum": "${ .input.x + 1 }"})
		),
		name="Adder",
		slug="adder",
	)

	out = _command("adder", "--input", '{"x": 41}', "--follow", "--tenant", tenant.slug, "--timeout", "30")

	assert "Started run" in out
	assert "[##############################] 2/2 steps  succeeded" in out
	assert '"sum": 42' in out
	assert "step.succeeded" in out


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("eager")
def test_run_workflow_exits_1_when_the_run_fails(publish: Callable[..., Workflow], tenant: Tenant) -> None:
	publish(
		linear(task("a", "fail.fail", input={"code": "nope", "message": "it broke"})),
		name="Breaks",
		slug="breaks",
	)

	out = io.StringIO()
	with pytest.raises(SystemExit) as exited:
		call_command("run_workflow", "breaks", "--follow", "--timeout", "30", stdout=out)

	assert exited.value.code == 1
	assert "Run failed." in out.getvalue()
	assert "it broke" in out.getvalue()


@pytest.mark.parametrize(
	("args", "message"),
	[
		(["adder", "--input", "{oops"], "--input is not valid JSON"),
		(["missing"], "Not found"),
		(["adder", "--input", '{"x": "one"}'], "/input/x"),
		(["adder", "--tenant", "nowhere"], "No organization 'nowhere'"),
		(["adder", "--user", "stranger"], "'stranger' is not a member"),
	],
)
def test_run_workflow_explains_bad_input(
	publish: Callable[..., Workflow], args: list[str], message: str
) -> None:
	publish(
		linear(
			node("b", "set", values=1),
			input_schema={"type": "object", "properties": {"x": {"type": "integer"}}},
		),
		name="Adder",
		slug="adder",
	)

	with pytest.raises(CommandError, match=message):
		_command(*args)


def test_run_workflow_needs_a_tenant_when_there_are_several(tenant_factory: Callable[..., Tenant]) -> None:
	tenant_factory()
	tenant_factory()

	with pytest.raises(CommandError, match="Name the organization with --tenant"):
		_command("anything")


@pytest.mark.usefixtures("eager")
def test_selectors_scope_runs_to_the_tenant(
	publish: Callable[..., Workflow],
	owner: User,
	tenant_factory: Callable[..., Tenant],
	settle: Callable[..., Any],
) -> None:
	workflow = publish(linear(node("a", "set", values=1)))
	run = settle(run_start, actor=owner, workflow=workflow)
	other = tenant_factory()
	other_owner = Membership.objects.for_tenant(other).get().user

	assert [r.pk for r in run_list(actor=owner, tenant=workflow.tenant, status="succeeded")] == [run.pk]
	assert [r.pk for r in run_list(actor=owner, tenant=workflow.tenant, workflow_id=workflow.pk)] == [run.pk]
	assert run_get(actor=owner, tenant=workflow.tenant, run_id=str(run.pk)) == run
	assert [s.key for s in run_steps(actor=owner, run=run)] == ["root:start", "root:a", "root:end"]
	assert [e.seq for e in run_events_after(actor=owner, run=run, after=2)][0] == 3
	with pytest.raises(NotFound):
		run_get(actor=other_owner, tenant=other, run_id=str(run.pk))
	with pytest.raises(NotFound):
		run_get(actor=owner, tenant=workflow.tenant, run_id="not-a-uuid")


@pytest.mark.usefixtures("eager")
def test_approval_inbox_shows_what_the_member_may_decide(
	publish: Callable[..., Workflow],
	tenant: Tenant,
	owner: User,
	member_factory: Callable[..., User],
	settle: Callable[..., Any],
) -> None:
	operator = member_factory(tenant, Role.OPERATOR, username="opal")
	other_operator = member_factory(tenant, Role.OPERATOR)
	doc = definition(
		[START, node("mine", "approval", assignees=["opal"]), node("ops", "approval", role="admin"), END],
		[("start", "mine"), ("mine", "ops", "approved"), ("ops", "end", "approved")],
	)
	workflow = publish(doc)
	settle(run_start, actor=owner, workflow=workflow)

	assert [a.node_id for a in approval_inbox(actor=operator, tenant=tenant)] == ["mine"]
	assert list(approval_inbox(actor=other_operator, tenant=tenant)) == []
	assert [a.node_id for a in approval_inbox(actor=owner, tenant=tenant)] == ["mine"]


# --- the run events WebSocket -------------------------------------------------------------------


def _app() -> Any:
	return tenant_auth_stack(URLRouter(websocket_urlpatterns))


@pytest.mark.django_db(transaction=True)
async def test_run_stream_resumes_after_n_then_goes_live_missing_nothing(
	tenant_factory: Callable[..., Tenant], settings: Any
) -> None:
	from workflows.services.definitions import workflow_create, workflow_publish

	def setup() -> tuple[Run, str]:
		tenant = tenant_factory()
		owner = Membership.objects.for_tenant(tenant).get().user
		workflow = workflow_create(
			actor=owner, tenant=tenant, name="Waits", definition=linear(node("nap", "wait", duration="PT1H"))
		)
		workflow_publish(actor=owner, workflow=workflow)
		run = run_start(actor=owner, workflow=workflow)
		with tenant_scope(tenant):
			raw = api_token_create(actor=owner, tenant=tenant, name="ws").raw
		return run, raw

	run, raw = await sync_to_async(setup)()
	total = await sync_to_async(lambda: RunEvent.objects.for_tenant(run.tenant).filter(run=run).count())()
	communicator = WebsocketCommunicator(
		_app(), f"/ws/runs/{run.pk}/?after=2", headers=[(b"authorization", f"Bearer {raw}".encode())]
	)

	connected, _ = await communicator.connect(timeout=10)
	backlog = [await communicator.receive_json_from(timeout=5) for _ in range(total - 2)]
	caught_up = await communicator.receive_json_from(timeout=5)
	layer = get_channel_layer()
	assert layer is not None
	duplicate = {"run": str(run.pk), "seq": total, "type": "dup", "step": "", "data": {}}
	live = {"run": str(run.pk), "seq": total + 1, "type": "step.succeeded", "step": "root:nap", "data": {}}
	await layer.group_send(run_group(run.pk), {"type": "run.events", "events": [duplicate, live]})
	received = await communicator.receive_json_from(timeout=5)
	await communicator.disconnect()
	await sync_to_async(connections.close_all)()  # the helper thread's connection would outlive the test

	assert connected
	assert [m["event"]["seq"] for m in backlog] == list(range(3, total + 1))
	assert caught_up == {"type": "caught_up", "seq": total, "status": RunStatus.WAITING}
	assert received["event"]["seq"] == total + 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("case", ["anonymous", "other_tenant", "missing_run"])
async def test_run_stream_refuses_outsiders(tenant_factory: Callable[..., Tenant], case: str) -> None:
	from workflows.services.definitions import workflow_create, workflow_publish

	def setup() -> tuple[str, list[tuple[bytes, bytes]]]:
		tenant, other = tenant_factory(), tenant_factory()
		owner = Membership.objects.for_tenant(tenant).get().user
		workflow = workflow_create(
			actor=owner, tenant=tenant, name="Waits", definition=linear(node("nap", "wait", duration="PT1H"))
		)
		workflow_publish(actor=owner, workflow=workflow)
		run = run_start(actor=owner, workflow=workflow)
		stranger = Membership.objects.for_tenant(other).get().user
		with tenant_scope(other):
			raw = api_token_create(actor=stranger, tenant=other, name="ws").raw
		headers = [] if case == "anonymous" else [(b"authorization", f"Bearer {raw}".encode())]
		path = (
			f"/ws/runs/{run.pk}/"
			if case != "missing_run"
			else "/ws/runs/00000000-0000-0000-0000-000000000000/"
		)
		return path, headers

	path, headers = await sync_to_async(setup)()
	communicator = WebsocketCommunicator(_app(), path, headers=headers)

	connected, code = await communicator.connect(timeout=10)
	await sync_to_async(connections.close_all)()

	assert not connected
	assert code == (4401 if case == "anonymous" else 4404)
