"""Hand-written lookups of one tenant's rows read what the ORM's ``for_tenant`` querysets read."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.engine.harness import linear, task
from workflows.context import tenant_scope
from workflows.models import Membership, Secret, Tenant, User, WorkflowVersion
from workflows.rows import first_of_tenant, values_of_tenant
from workflows.services.definitions import workflow_create, workflow_publish, workflow_update
from workflows.services.secrets import secret_delete, secret_set

pytestmark = pytest.mark.django_db


def _owner(tenant: Tenant) -> User:
	return Membership.objects.for_tenant(tenant).get().user


def test_the_first_row_is_the_one_the_queryset_gives_and_deferred_fields_load_on_use(
	tenant_factory: Callable[..., Tenant],
) -> None:
	tenant = tenant_factory()
	owner = _owner(tenant)
	workflow = workflow_create(actor=owner, tenant=tenant, name="Two", definition=linear(task("a")))
	workflow_publish(actor=owner, workflow=workflow)
	workflow = workflow_update(actor=owner, workflow=workflow, definition=linear(task("a"), task("b")))
	workflow_publish(actor=owner, workflow=workflow)
	names = tuple(f.name for f in WorkflowVersion._meta.concrete_fields if f.name != "definition")

	latest = first_of_tenant(
		WorkflowVersion, tenant.pk, {"workflow": workflow.pk}, order_by="-number", names=names
	)
	first = first_of_tenant(WorkflowVersion, tenant.pk, {"workflow": workflow.pk}, order_by="number")
	expected = (
		WorkflowVersion.objects.for_tenant(tenant).filter(workflow=workflow).order_by("-number").first()
	)

	assert expected is not None
	assert latest is not None
	assert first is not None
	assert (latest.pk, latest.number, latest.created_at) == (expected.pk, 2, expected.created_at)
	assert latest.get_deferred_fields() == {"definition"}
	assert latest.definition == expected.definition  # read when first used
	assert first.number == 1
	assert first_of_tenant(WorkflowVersion, tenant.pk, {"workflow": workflow.pk, "number": 3}) is None


def test_soft_deleted_and_other_tenants_rows_are_left_out(tenant_factory: Callable[..., Tenant]) -> None:
	tenant, other = tenant_factory(), tenant_factory()
	owner = _owner(tenant)
	for name in ("API_KEY", "OLD_KEY", "TOKEN"):
		secret_set(actor=owner, tenant=tenant, name=name, value="v")
	secret_set(actor=_owner(other), tenant=other, name="THEIRS", value="v")
	secret_delete(actor=owner, tenant=tenant, name="OLD_KEY")

	assert sorted(values_of_tenant(Secret, tenant.pk, "name")) == ["API_KEY", "TOKEN"]
	assert values_of_tenant(Secret, tenant.pk, "name", {"name": "OLD_KEY"}) == []
	assert first_of_tenant(Membership, other.pk, {"user": owner.pk}) is None
	membership = first_of_tenant(Membership, tenant.pk, {"user": owner.pk})
	assert membership == Membership.objects.for_tenant(tenant).get(user=owner)


def test_a_lookup_of_another_tenant_than_the_bound_one_is_a_programming_error(
	tenant_factory: Callable[..., Tenant],
) -> None:
	tenant, other = tenant_factory(), tenant_factory()

	with tenant_scope(tenant), pytest.raises(AssertionError, match="another tenant"):
		first_of_tenant(Membership, other.pk, {"user": _owner(other).pk})
