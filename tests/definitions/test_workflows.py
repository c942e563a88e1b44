"""Workflows: drafts with revisions and history, validation, publishing, versions, rollback,
archive, import/export, sharing."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workflows.context import tenant_scope
from workflows.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from workflows.models import (
	AuditEvent,
	Membership,
	Tenant,
	User,
	VersionImmutableError,
	Workflow,
	WorkflowVersion,
)
from workflows.roles import Role
from workflows.selectors.definitions import (
	workflow_diff,
	workflow_draft_history,
	workflow_get,
	workflow_list,
	workflow_version_get,
	workflow_version_list,
)
from workflows.services.definitions import (
	workflow_archive,
	workflow_create,
	workflow_export,
	workflow_import,
	workflow_publish,
	workflow_rollback,
	workflow_unarchive,
	workflow_update,
	workflow_validate,
)
from workflows.services.tenancy import object_share, object_unshare

pytestmark = pytest.mark.django_db


def linear(*, value: Any = 1) -> dict[str, Any]:
	"""start -> set -> end: valid, and needing no connector."""
	return {
		"schema_version": "1.0",
		"input_schema": {"type": "object", "properties": {"amount": {"type": "number"}}},
		"nodes": [
			{"id": "start", "type": "start", "name": "Start", "config": {}},
			{
				"id": "compute",
				"type": "set",
				"name": "Compute",
				"config": {"values": {"total": "${ .input.amount * 2 }", "v": value}},
			},
			{"id": "end", "type": "end", "name": "End", "config": {}},
		],
		"edges": [{"source": "start", "target": "compute"}, {"source": "compute", "target": "end"}],
	}


@pytest.fixture
def workflow(tenant: Tenant, owner: User) -> Workflow:
	return workflow_create(actor=owner, tenant=tenant, name="Order intake", definition=linear())


def test_create_derives_the_slug_and_starts_from_a_runnable_draft(tenant: Tenant, owner: User) -> None:
	workflow = workflow_create(
		actor=owner, tenant=tenant, name="Nightly ETL: Sales", tags=["etl", "etl", "nightly"]
	)

	assert workflow.slug == "nightly-etl-sales"
	assert workflow.tags == ["etl", "nightly"]
	assert [n["type"] for n in workflow.draft["nodes"]] == ["start", "end"]
	assert workflow_validate(actor=owner, tenant=tenant, definition=workflow.draft).ok
	assert (
		AuditEvent.objects.for_tenant(tenant)
		.filter(action="workflow.create", object_id=str(workflow.pk))
		.count()
		== 1
	)


@pytest.mark.parametrize(
	("kwargs", "pointer"),
	[
		({"name": ""}, "/name"),
		({"name": "x", "slug": "Not A Slug"}, "/slug"),
		({"name": "x", "tags": ["ok", ""]}, "/tags"),
		({"name": "x", "tags": "etl"}, "/tags"),
		({"name": "x", "definition": ["not", "an", "object"]}, "/definition"),
	],
)
def test_create_refuses_bad_input(tenant: Tenant, owner: User, kwargs: dict[str, Any], pointer: str) -> None:
	with pytest.raises(ValidationFailed) as caught:
		workflow_create(actor=owner, tenant=tenant, **kwargs)

	assert caught.value.errors[0].pointer == pointer
	assert not Workflow.objects.for_tenant(tenant).exists()


def test_oversized_drafts_are_refused_naming_the_limit(tenant: Tenant, owner: User) -> None:
	huge = linear(value="x" * (2 * 1024 * 1024))

	with pytest.raises(ValidationFailed, match="max_document_bytes"):
		workflow_create(actor=owner, tenant=tenant, name="Huge", definition=huge)


def test_slugs_are_unique_per_tenant_only(
	workflow: Workflow, tenant: Tenant, owner: User, tenant_factory: Callable[..., Tenant]
) -> None:
	other = tenant_factory()
	other_owner = Membership.objects.for_tenant(other).get().user

	with pytest.raises(Conflict, match="exists already"):
		workflow_create(actor=owner, tenant=tenant, name="Again", slug=workflow.slug)
	copy_elsewhere = workflow_create(actor=other_owner, tenant=other, name="Order intake")

	assert copy_elsewhere.slug == workflow.slug


def test_viewers_and_operators_cannot_edit(
	workflow: Workflow, tenant: Tenant, member_factory: Callable[..., User]
) -> None:
	for role in (Role.VIEWER, Role.OPERATOR):
		member = member_factory(tenant, role)
		with pytest.raises(PermissionDenied, match="workflow.edit"):
			workflow_update(actor=member, workflow=workflow, name="Mine")
		with pytest.raises(PermissionDenied):
			workflow_create(actor=member, tenant=tenant, name="New")


def test_draft_revision_guards_against_lost_updates(
	workflow: Workflow, owner: User, member_factory: Callable[..., User]
) -> None:
	editor = member_factory(workflow.tenant, Role.EDITOR)
	read_revision = workflow.draft_revision

	workflow_update(actor=editor, workflow=workflow, if_revision=read_revision, definition=linear(value=2))
	with pytest.raises(Conflict, match="changed since you read it"):
		workflow_update(actor=owner, workflow=workflow, if_revision=read_revision, definition=linear(value=3))

	fresh = Workflow.objects.for_tenant(workflow.tenant).get(pk=workflow.pk)
	assert fresh.draft_revision == read_revision + 1
	assert fresh.draft["nodes"][1]["config"]["values"]["v"] == 2


def test_metadata_edits_do_not_bump_the_draft_revision_and_no_op_edits_write_nothing(
	workflow: Workflow, owner: User
) -> None:
	events_before = AuditEvent.objects.for_tenant(workflow.tenant).count()

	renamed = workflow_update(
		actor=owner, workflow=workflow, name="Order intake v2", tags=["orders"], description="All orders"
	)
	same = workflow_update(actor=owner, workflow=workflow, name="Order intake v2")

	assert renamed.draft_revision == workflow.draft_revision
	assert same.name == "Order intake v2"
	assert AuditEvent.objects.for_tenant(workflow.tenant).count() == events_before + 1


def test_slug_change_checks_uniqueness(workflow: Workflow, tenant: Tenant, owner: User) -> None:
	workflow_create(actor=owner, tenant=tenant, name="Other")

	with pytest.raises(Conflict):
		workflow_update(actor=owner, workflow=workflow, slug="other")
	moved = workflow_update(actor=owner, workflow=workflow, slug="order-intake-renamed")

	assert moved.slug == "order-intake-renamed"


def test_draft_history_is_kept_and_diffable(workflow: Workflow, owner: User) -> None:
	workflow_update(actor=owner, workflow=workflow, definition=linear(value=2))
	workflow_update(actor=owner, workflow=workflow, definition=linear(value=3))

	history = list(workflow_draft_history(actor=owner, workflow=workflow))
	oldest = history[-1]
	diff = workflow_diff(
		actor=owner, workflow=workflow, base=f"history:{oldest.history_id}", head="draft"
	).to_dict()

	assert len(history) == 3
	assert [h.draft["nodes"][1]["config"]["values"]["v"] for h in history] == [3, 2, 1]
	assert oldest.history_user == owner
	assert json.dumps(diff).count("/config/values/v") >= 1


def test_publish_refuses_an_invalid_draft_with_every_error(workflow: Workflow, owner: User) -> None:
	broken = linear()
	broken["nodes"].append(
		{"id": "orphan", "type": "set", "name": "Orphan", "config": {"values": "${ .input | }"}}
	)
	broken["nodes"].append({"id": "teleport", "type": "teleport", "name": "?", "config": {}})
	workflow_update(actor=owner, workflow=workflow, definition=broken)

	with pytest.raises(ValidationFailed) as caught:
		workflow_publish(actor=owner, workflow=workflow)

	pointers = [e.pointer for e in caught.value.errors]
	assert all(p.startswith("/definition/") for p in pointers)
	assert any("/nodes/4" in p for p in pointers)
	assert len(caught.value.errors) >= 2
	assert not WorkflowVersion.objects.for_tenant(workflow.tenant).exists()


def test_publishing_numbers_versions_and_skips_identical_content(workflow: Workflow, owner: User) -> None:
	first = workflow_publish(actor=owner, workflow=workflow, changelog="first")
	again = workflow_publish(actor=owner, workflow=workflow)
	reordered = copy.deepcopy(workflow.draft)
	reordered["edges"] = reordered["edges"]  # same content, keys re-serialised
	workflow_update(actor=owner, workflow=workflow, definition=linear(value=2))
	second = workflow_publish(actor=owner, workflow=workflow)

	assert (first.created, first.version.number) == (True, 1)
	assert (again.created, again.version.pk) == (False, first.version.pk)
	assert (second.created, second.version.number) == (True, 2)
	assert [v.number for v in workflow_version_list(actor=owner, workflow=workflow)] == [2, 1]
	assert workflow_version_get(actor=owner, workflow=workflow, number=1).changelog == "first"
	assert AuditEvent.objects.for_tenant(workflow.tenant).filter(action="workflow.publish").count() == 2


def test_published_versions_never_change(workflow: Workflow, owner: User) -> None:
	version = workflow_publish(actor=owner, workflow=workflow).version
	workflow_update(actor=owner, workflow=workflow, definition=linear(value=99))

	version.definition = {"tampered": True}
	with pytest.raises(VersionImmutableError):
		version.save()
	with pytest.raises(VersionImmutableError):
		version.delete()

	stored = WorkflowVersion.objects.for_tenant(workflow.tenant).get(pk=version.pk)
	assert stored.definition == linear()


def test_rollback_makes_the_draft_a_version_again(workflow: Workflow, owner: User) -> None:
	workflow_publish(actor=owner, workflow=workflow)
	workflow_update(actor=owner, workflow=workflow, definition=linear(value=5))

	rolled = workflow_rollback(actor=owner, workflow=workflow, version_number=1)
	again = workflow_rollback(actor=owner, workflow=workflow, version_number=1)

	assert rolled.draft == linear()
	assert again.draft_revision == rolled.draft_revision
	assert workflow_diff(actor=owner, workflow=workflow, base="v1").is_empty
	with pytest.raises(NotFound, match="Version 7"):
		workflow_rollback(actor=owner, workflow=workflow, version_number=7)


def test_diff_refs_are_checked(workflow: Workflow, owner: User) -> None:
	with pytest.raises(ValidationFailed, match="not a version reference"):
		workflow_diff(actor=owner, workflow=workflow, base="yesterday")
	with pytest.raises(NotFound):
		workflow_diff(actor=owner, workflow=workflow, base="history:00000000-0000-0000-0000-000000000000")
	with pytest.raises(NotFound):
		workflow_diff(actor=owner, workflow=workflow, base="v3")


def test_archive_hides_and_freezes_until_restored(workflow: Workflow, owner: User) -> None:
	workflow_archive(actor=owner, workflow=workflow)

	hidden = workflow.pk not in {w.pk for w in workflow_list(actor=owner, tenant=workflow.tenant)}
	shown = workflow.pk in {
		w.pk for w in workflow_list(actor=owner, tenant=workflow.tenant, include_archived=True)
	}
	with pytest.raises(Conflict, match="archived"):
		workflow_update(actor=owner, workflow=workflow, definition=linear(value=4))
	with pytest.raises(Conflict, match="archived"):
		workflow_publish(actor=owner, workflow=workflow)
	with pytest.raises(Conflict, match="archived"):
		workflow_rollback(actor=owner, workflow=workflow, version_number=1)
	workflow_archive(actor=owner, workflow=workflow)  # archiving twice is harmless
	restored = workflow_unarchive(actor=owner, workflow=workflow)

	assert hidden
	assert shown
	assert not restored.is_archived


def test_list_filters_and_get_by_id_or_slug(workflow: Workflow, tenant: Tenant, owner: User) -> None:
	workflow_update(actor=owner, workflow=workflow, tags=["orders", "sales"])
	workflow_create(actor=owner, tenant=tenant, name="Payroll", tags=["hr"])

	by_tag = [w.slug for w in workflow_list(actor=owner, tenant=tenant, tag="orders")]
	by_search = [w.slug for w in workflow_list(actor=owner, tenant=tenant, search="payr")]

	assert by_tag == ["order-intake"]
	assert by_search == ["payroll"]
	assert workflow_get(actor=owner, tenant=tenant, workflow_id=str(workflow.pk)) == workflow
	assert workflow_get(actor=owner, tenant=tenant, workflow_id="order-intake") == workflow
	with pytest.raises(NotFound):
		workflow_get(actor=owner, tenant=tenant, workflow_id="missing")


def test_another_tenants_workflow_is_not_found(
	workflow: Workflow, tenant_factory: Callable[..., Tenant]
) -> None:
	other = tenant_factory()
	other_owner = Membership.objects.for_tenant(other).get().user

	with pytest.raises(NotFound):
		workflow_get(actor=other_owner, tenant=other, workflow_id=str(workflow.pk))
	with pytest.raises(NotFound):
		workflow_update(actor=other_owner, workflow=workflow, name="Stolen")


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_export_then_import_round_trips(
	workflow: Workflow, tenant: Tenant, owner: User, fmt: Literal["json", "yaml"]
) -> None:
	workflow_update(
		actor=owner, workflow=workflow, tags=["on", "yes", "2024-01-01"], description="No: really"
	)
	text = workflow_export(actor=owner, workflow=workflow, format=fmt)

	copy_ = workflow_import(actor=owner, tenant=tenant, text=text, slug="order-intake-copy")

	assert copy_.draft == workflow.draft
	assert (copy_.name, copy_.description, copy_.tags) == (
		workflow.name,
		"No: really",
		["on", "yes", "2024-01-01"],
	)
	assert (
		workflow_export(actor=owner, workflow=copy_, format=fmt).replace("order-intake-copy", "order-intake")
		== text
	)


def test_export_a_version(workflow: Workflow, owner: User) -> None:
	workflow_publish(actor=owner, workflow=workflow)
	workflow_update(actor=owner, workflow=workflow, definition=linear(value=8))

	exported = json.loads(workflow_export(actor=owner, workflow=workflow, version=1))

	assert exported["definition"] == linear()
	with pytest.raises(NotFound):
		workflow_export(actor=owner, workflow=workflow, version=9)


@pytest.mark.parametrize(
	("text", "message"),
	[
		('{"format": "apg.workflow/v1", "workflow": {', r"cannot be read \(line 1"),
		('{"nodes": []}', "Not a workflow export"),
		("- just\n- a list\n", "cannot be read"),
	],
)
def test_import_errors_say_what_to_fix(tenant: Tenant, owner: User, text: str, message: str) -> None:
	with pytest.raises(ValidationFailed, match=message):
		workflow_import(actor=owner, tenant=tenant, text=text)

	assert not Workflow.objects.for_tenant(tenant).exists()


_names = st.text(
	st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=40
).filter(lambda s: s.strip() != "")
# Text the database can store: NUL and unpaired surrogates are refused up front (see the test
# after this one).
_storable = st.characters(exclude_characters="\x00", exclude_categories=("Cs",))
_json = st.recursive(
	st.none() | st.booleans() | st.integers() | st.text(_storable, max_size=20),
	lambda inner: (
		st.lists(inner, max_size=3) | st.dictionaries(st.text(_storable, max_size=8), inner, max_size=3)
	),
	max_leaves=10,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
	name=_names,
	description=st.text(_storable, max_size=60),
	tags=st.lists(
		st.text(_storable, min_size=1, max_size=10).filter(lambda t: t.strip() == t and t != ""),
		max_size=4,
		unique=True,
	),
	extra=_json,
	fmt=st.sampled_from(["json", "yaml"]),
)
def test_export_import_is_the_identity(
	tenant: Tenant,
	owner: User,
	name: str,
	description: str,
	tags: list[str],
	extra: Any,
	fmt: Literal["json", "yaml"],
) -> None:
	definition = linear(value=extra)
	with tenant_scope(tenant):
		Workflow.objects.filter(slug__startswith="prop-").update(deleted_at="2000-01-01T00:00:00Z")
	original = workflow_create(
		actor=owner,
		tenant=tenant,
		name=name,
		slug="prop-a",
		description=description,
		tags=tags,
		definition=definition,
	)
	text = workflow_export(actor=owner, workflow=original, format=fmt)

	imported = workflow_import(actor=owner, tenant=tenant, text=text, slug="prop-b")

	assert imported.draft == original.draft
	assert (imported.name, imported.description, imported.tags) == (
		original.name,
		original.description,
		original.tags,
	)


@pytest.mark.parametrize(
	("fields", "pointer"),
	[
		({"description": "a\x00b"}, "/description"),
		({"tags": ["ok", "b\x00d"]}, "/tags/1"),
		({"definition": linear(value={"k": "v\x00"})}, "/definition/nodes/1/config/values/v/k"),
		# An unpaired surrogate (what a JSON escape such as "\ud800" decodes to): no UTF-8 for it.
		({"tags": ["ok", "b\ud800"]}, "/tags/1"),
		({"definition": linear(value={"k": "\udfff"})}, "/definition/nodes/1/config/values/v/k"),
	],
)
def test_text_the_database_cannot_store_is_refused_naming_the_field(
	tenant: Tenant, owner: User, fields: dict[str, Any], pointer: str
) -> None:
	with pytest.raises(ValidationFailed) as refused:
		workflow_create(actor=owner, tenant=tenant, name="Nul", **fields)

	assert refused.value.errors[0].pointer == pointer
	assert "NUL" in refused.value.errors[0].message
	assert not Workflow.objects.for_tenant(tenant).filter(name="Nul").exists()


def test_sharing_one_workflow_lets_a_viewer_edit_only_that_one(
	workflow: Workflow, tenant: Tenant, owner: User, member_factory: Callable[..., User]
) -> None:
	viewer = member_factory(tenant, Role.VIEWER)
	other = workflow_create(actor=owner, tenant=tenant, name="Other")

	object_share(actor=owner, obj=workflow, user=viewer, grant="change")
	edited = workflow_update(actor=viewer, workflow=workflow, name="Edited by a viewer")
	with pytest.raises(PermissionDenied):
		workflow_update(actor=viewer, workflow=other, name="Not shared")
	object_unshare(actor=owner, obj=workflow, user=viewer, grant="change")
	viewer = User.objects.get(pk=viewer.pk)  # drop guardian's per-instance cache

	assert edited.name == "Edited by a viewer"
	with pytest.raises(PermissionDenied):
		workflow_update(actor=viewer, workflow=workflow, name="Again")
	actions = set(AuditEvent.objects.for_tenant(tenant).values_list("action", flat=True))
	assert {"workflow.share", "workflow.unshare"} <= actions


def test_sharing_checks_grant_and_membership(
	workflow: Workflow,
	tenant: Tenant,
	owner: User,
	user_factory: Callable[..., User],
	member_factory: Callable[..., User],
) -> None:
	editor = member_factory(tenant, Role.EDITOR)

	with pytest.raises(ValidationFailed, match="Unknown grant"):
		object_share(actor=owner, obj=workflow, user=editor, grant="own")
	with pytest.raises(ValidationFailed, match="not a member"):
		object_share(actor=owner, obj=workflow, user=user_factory(), grant="view")
	with pytest.raises(PermissionDenied):
		object_share(actor=editor, obj=workflow, user=owner, grant="view")
	with pytest.raises(ValidationFailed, match="Unknown grant"):
		object_unshare(actor=owner, obj=workflow, user=editor, grant="own")
