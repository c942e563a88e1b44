"""Templates: global (shipped, read-only) and tenant-owned; instantiate and publish."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.definitions.test_workflows import linear
from workflows.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from workflows.models import AuditEvent, Membership, Tenant, User, WorkflowTemplate
from workflows.roles import Role
from workflows.selectors.definitions import template_get, template_list
from workflows.services.definitions import (
	template_instantiate,
	template_publish,
	workflow_create,
	workflow_publish,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def global_template() -> WorkflowTemplate:
	return WorkflowTemplate.objects.create(
		tenant=None,
		slug="double-it",
		name="Double it",
		description="Doubles an amount.",
		category="Demo",
		industry="General",
		tags=["demo", "math"],
		definition=linear(),
		sample_input={"amount": 21},
	)


def test_instantiating_a_global_template_copies_its_definition(
	global_template: WorkflowTemplate, tenant: Tenant, owner: User
) -> None:
	workflow = template_instantiate(actor=owner, tenant=tenant, template=global_template, name="My doubler")

	assert workflow.draft == global_template.definition
	assert workflow.tags == ["demo", "math"]
	assert workflow.slug == "my-doubler"
	workflow.draft["nodes"][0]["name"] = "changed"
	global_template.refresh_from_db()
	assert global_template.definition["nodes"][0]["name"] == "Start"
	event = AuditEvent.objects.for_tenant(tenant).get(action="template.instantiate")
	assert event.changes["@template"] == "double-it"


def test_templates_list_filters_and_shows_only_global_and_own(
	global_template: WorkflowTemplate, tenant: Tenant, owner: User, tenant_factory: Callable[..., Tenant]
) -> None:
	other = tenant_factory()
	other_owner = Membership.objects.for_tenant(other).get().user
	secret = workflow_create(actor=other_owner, tenant=other, name="Secret sauce", definition=linear())
	workflow_publish(actor=other_owner, workflow=secret)
	template_publish(actor=other_owner, workflow=secret, category="Demo", industry="Food")

	visible = {t.slug for t in template_list(actor=owner, tenant=tenant)}
	by_category = {t.slug for t in template_list(actor=owner, tenant=tenant, category="demo")}
	by_industry = {t.slug for t in template_list(actor=owner, tenant=tenant, industry="Retail")}
	by_tag = {t.slug for t in template_list(actor=owner, tenant=tenant, tag="math")}
	by_search = {t.slug for t in template_list(actor=owner, tenant=tenant, search="doubles")}

	assert visible == {"double-it"}
	assert by_category == {"double-it"}
	assert by_industry == set()
	assert by_tag == {"double-it"}
	assert by_search == {"double-it"}
	foreign = WorkflowTemplate.objects.get(slug="secret-sauce")
	with pytest.raises(NotFound):
		template_get(actor=owner, tenant=tenant, template_id=str(foreign.pk))
	with pytest.raises(NotFound):
		template_instantiate(actor=owner, tenant=tenant, template=foreign)
	assert template_get(actor=owner, tenant=tenant, template_id="double-it") == global_template


def test_only_tenant_admins_publish_templates_and_republishing_bumps_the_version(
	tenant: Tenant, owner: User, member_factory: Callable[..., User]
) -> None:
	editor = member_factory(tenant, Role.EDITOR)
	workflow = workflow_create(actor=editor, tenant=tenant, name="Invoice approval", definition=linear())

	with pytest.raises(Conflict, match="Publish the workflow first"):
		template_publish(actor=owner, workflow=workflow, category="Finance", industry="Any")
	workflow_publish(actor=editor, workflow=workflow)
	with pytest.raises(PermissionDenied, match="template.publish"):
		template_publish(actor=editor, workflow=workflow, category="Finance", industry="Any")
	with pytest.raises(ValidationFailed) as caught:
		template_publish(actor=owner, workflow=workflow, category=" ", industry="")
	first = template_publish(
		actor=owner, workflow=workflow, category="Finance", industry="Any", sample_input={"amount": 1}
	)
	second = template_publish(actor=owner, workflow=workflow, category="Finance", industry="Banking")

	assert {e.pointer for e in caught.value.errors} == {"/category", "/industry"}
	assert first.pk == second.pk
	assert (second.version, second.industry, second.tenant) == (2, "Banking", tenant)
	assert template_get(actor=editor, tenant=tenant, template_id=str(first.pk)).version == 2


def test_a_tenant_template_shadows_a_global_one_with_the_same_slug(
	global_template: WorkflowTemplate, tenant: Tenant, owner: User
) -> None:
	workflow = workflow_create(actor=owner, tenant=tenant, name="Double it", definition=linear(value=2))
	workflow_publish(actor=owner, workflow=workflow)
	own = template_publish(actor=owner, workflow=workflow, category="Demo", industry="General")

	assert template_get(actor=owner, tenant=tenant, template_id="double-it") == own
	assert global_template.is_global
	assert not own.is_global


def test_a_deleted_template_cannot_be_instantiated(
	global_template: WorkflowTemplate, tenant: Tenant, owner: User
) -> None:
	from django.utils import timezone

	global_template.deleted_at = timezone.now()
	global_template.save()

	with pytest.raises(NotFound):
		template_instantiate(actor=owner, tenant=tenant, template=global_template)
	with pytest.raises(NotFound):
		template_get(actor=owner, tenant=tenant, template_id="nope-not-a-template")
