"""Tenancy: scoped managers, soft delete and restore, memberships, roles, object sharing."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.apps import apps

from workflows.context import dangerously_unscoped, tenant_scope
from workflows.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from workflows.models import (
	ApiToken,
	AuditEvent,
	Membership,
	Tenant,
	TenantOwnedModel,
	TenantScopedModel,
	TenantScopeError,
	User,
)
from workflows.permissions import membership_remember, require
from workflows.roles import ROLE_PERMISSIONS, Perm, Role, role_allows
from workflows.services.tenancy import (
	membership_add,
	membership_change_role,
	membership_remove,
	object_restore,
	object_soft_delete,
	tenant_create,
	tenant_update,
)

pytestmark = pytest.mark.django_db


def _tenant_owned_models() -> list[type]:
	return [
		m for m in apps.get_models() if issubclass(m, TenantOwnedModel | TenantScopedModel) or m is AuditEvent
	]


@pytest.mark.parametrize("model", _tenant_owned_models(), ids=lambda m: m.__name__)
def test_every_tenant_owned_model_refuses_an_unscoped_query(model: type) -> None:
	with pytest.raises(TenantScopeError, match="is tenant-owned"):
		model.objects.all()


def test_bound_tenant_filters_every_query(tenant_factory: Callable[..., Tenant]) -> None:
	a, b = tenant_factory(), tenant_factory()

	with tenant_scope(a):
		seen = set(Membership.objects.values_list("tenant_id", flat=True))

	assert seen == {a.pk}
	assert Membership.objects.for_tenant(b).count() == 1


def test_asking_for_another_tenant_than_the_bound_one_is_a_bug(tenant_factory: Callable[..., Tenant]) -> None:
	a, b = tenant_factory(), tenant_factory()

	with tenant_scope(a), pytest.raises(AssertionError, match="another tenant"):
		Membership.objects.for_tenant(b)


def test_the_named_bypass_sees_every_tenant(tenant_factory: Callable[..., Tenant]) -> None:
	a, b = tenant_factory(), tenant_factory()

	with dangerously_unscoped():
		tenants = set(Membership.objects.values_list("tenant_id", flat=True))

	assert {a.pk, b.pk} <= tenants


def test_tenant_create_makes_the_actor_owner_and_audits_both(user_factory: Callable[..., User]) -> None:
	user = user_factory()

	tenant = tenant_create(actor=user, slug="acme", name="  Acme Corp ")

	assert tenant.name == "Acme Corp"
	assert Membership.objects.for_tenant(tenant).get().role == Role.OWNER
	actions = sorted(AuditEvent.objects.for_tenant(tenant).values_list("action", flat=True))
	assert actions == ["membership.create", "tenant.create"]


@pytest.mark.parametrize(
	("slug", "name", "pointer"), [("Bad Slug!", "x", "/slug"), ("ok-slug", "   ", "/name")]
)
def test_tenant_create_refuses_bad_input(
	user_factory: Callable[..., User], slug: str, name: str, pointer: str
) -> None:
	with pytest.raises(ValidationFailed) as caught:
		tenant_create(actor=user_factory(), slug=slug, name=name)

	assert caught.value.errors[0].pointer == pointer
	assert Tenant.objects.count() == 0


def test_tenant_slug_is_unique(user_factory: Callable[..., User], tenant: Tenant) -> None:
	with pytest.raises(Conflict, match="exists already"):
		tenant_create(actor=user_factory(), slug=tenant.slug, name="Other")


def test_tenant_update_renames_and_audits_only_real_changes(tenant: Tenant, owner: User) -> None:
	tenant_update(actor=owner, tenant=tenant, name="Renamed")
	tenant_update(actor=owner, tenant=tenant, name="Renamed")

	events = AuditEvent.objects.for_tenant(tenant).filter(action="tenant.update")
	assert events.count() == 1
	assert events.get().changes == {"name": {"before": tenant.name, "after": "Renamed"}}
	with pytest.raises(ValidationFailed):
		tenant_update(actor=owner, tenant=tenant, name=" ")


def test_viewer_cannot_mutate(
	tenant: Tenant, member_factory: Callable[..., User], user_factory: Callable[..., User]
) -> None:
	viewer = member_factory(tenant, Role.VIEWER)

	with pytest.raises(PermissionDenied, match="member.manage"):
		membership_add(actor=viewer, tenant=tenant, user=user_factory(), role="viewer")
	with pytest.raises(PermissionDenied):
		tenant_update(actor=viewer, tenant=tenant, name="Mine now")

	assert Membership.objects.for_tenant(tenant).count() == 2


def test_outsider_gets_not_found_not_forbidden(tenant: Tenant, user_factory: Callable[..., User]) -> None:
	with pytest.raises(NotFound):
		tenant_update(actor=user_factory(), tenant=tenant, name="x")


def test_admin_adds_members_but_only_owners_make_owners(
	tenant: Tenant, owner: User, member_factory: Callable[..., User], user_factory: Callable[..., User]
) -> None:
	admin = member_factory(tenant, Role.ADMIN)
	newcomer = user_factory()

	membership = membership_add(actor=admin, tenant=tenant, user=newcomer, role="editor")
	with pytest.raises(PermissionDenied, match="owner.manage"):
		membership_add(actor=admin, tenant=tenant, user=user_factory(), role="owner")
	with pytest.raises(Conflict, match="member already"):
		membership_add(actor=admin, tenant=tenant, user=newcomer, role="viewer")
	with pytest.raises(ValidationFailed) as caught:
		membership_add(actor=owner, tenant=tenant, user=user_factory(), role="superhero")

	assert membership.role == Role.EDITOR
	assert "viewer, editor, operator, admin, owner" in caught.value.errors[0].hint


def test_the_last_owner_cannot_be_demoted_or_removed(tenant: Tenant, owner: User) -> None:
	membership = Membership.objects.for_tenant(tenant).get(user=owner)

	with pytest.raises(Conflict, match="last owner"):
		membership_change_role(actor=owner, tenant=tenant, membership=membership, role="admin")
	with pytest.raises(Conflict, match="last owner"):
		membership_remove(actor=owner, tenant=tenant, membership=membership)


def test_role_change_and_removal_with_a_second_owner(
	tenant: Tenant, owner: User, member_factory: Callable[..., User]
) -> None:
	second = member_factory(tenant, Role.OWNER)
	mine = Membership.objects.for_tenant(tenant).get(user=owner)

	unchanged = membership_change_role(actor=second, tenant=tenant, membership=mine, role="owner")
	demoted = membership_change_role(actor=second, tenant=tenant, membership=mine, role="admin")
	membership_remove(actor=second, tenant=tenant, membership=demoted)

	assert unchanged.role == Role.OWNER
	with tenant_scope(tenant):
		assert not Membership.objects.filter(user=owner).exists()
		assert Membership.objects.with_deleted().filter(user=owner).exists()


def test_admin_cannot_touch_an_owner(
	tenant: Tenant, owner: User, member_factory: Callable[..., User]
) -> None:
	admin = member_factory(tenant, Role.ADMIN)
	owner_membership = Membership.objects.for_tenant(tenant).get(user=owner)

	with pytest.raises(PermissionDenied):
		membership_change_role(actor=admin, tenant=tenant, membership=owner_membership, role="viewer")
	with pytest.raises(PermissionDenied):
		membership_remove(actor=admin, tenant=tenant, membership=owner_membership)


def test_a_member_may_leave(tenant: Tenant, member_factory: Callable[..., User]) -> None:
	viewer = member_factory(tenant, Role.VIEWER)
	membership = Membership.objects.for_tenant(tenant).get(user=viewer)

	membership_remove(actor=viewer, tenant=tenant, membership=membership)

	assert not Membership.objects.for_tenant(tenant).filter(user=viewer).exists()


def test_soft_deleted_rows_are_hidden_and_admins_restore_them(
	tenant: Tenant, owner: User, member_factory: Callable[..., User]
) -> None:
	editor = member_factory(tenant, Role.EDITOR)
	leaving = member_factory(tenant, Role.VIEWER)
	membership = Membership.objects.for_tenant(tenant).get(user=leaving)

	object_soft_delete(actor=owner, obj=membership, perm=Perm.MEMBER_MANAGE)
	hidden = not Membership.objects.for_tenant(tenant).filter(pk=membership.pk).exists()
	with pytest.raises(PermissionDenied):
		object_restore(actor=editor, tenant=tenant, model=Membership, object_id=membership.pk)
	restored = object_restore(actor=owner, tenant=tenant, model=Membership, object_id=membership.pk)

	assert hidden
	assert restored.deleted_at is None
	assert Membership.objects.for_tenant(tenant).filter(pk=membership.pk).exists()
	actions = list(
		AuditEvent.objects.for_tenant(tenant)
		.filter(object_id=str(membership.pk))
		.values_list("action", flat=True)
	)
	assert sorted(actions) == ["membership.delete", "membership.restore"]


def test_restore_errors(tenant: Tenant, owner: User, tenant_factory: Callable[..., Tenant]) -> None:
	live = Membership.objects.for_tenant(tenant).get(user=owner)
	other = tenant_factory()
	foreign = Membership.objects.for_tenant(other).get()

	with pytest.raises(Conflict, match="not deleted"):
		object_restore(actor=owner, tenant=tenant, model=Membership, object_id=live.pk)
	with pytest.raises(NotFound):
		object_restore(actor=owner, tenant=tenant, model=Membership, object_id=foreign.pk)
	with pytest.raises(NotFound):
		object_restore(actor=owner, tenant=tenant, model=Membership, object_id="not-a-uuid")


def test_restore_refuses_to_duplicate_a_live_unique_row(
	tenant: Tenant, owner: User, member_factory: Callable[..., User]
) -> None:
	user = member_factory(tenant, Role.VIEWER)
	old = Membership.objects.for_tenant(tenant).get(user=user)
	object_soft_delete(actor=owner, obj=old, perm=Perm.MEMBER_MANAGE)
	membership_add(actor=owner, tenant=tenant, user=user, role="editor")

	with pytest.raises(Conflict, match="live row with the same unique fields"):
		object_restore(actor=owner, tenant=tenant, model=Membership, object_id=old.pk)


def test_soft_delete_of_someone_elses_row_is_not_found(
	tenant: Tenant, owner: User, tenant_factory: Callable[..., Tenant]
) -> None:
	other = tenant_factory()
	foreign = Membership.objects.for_tenant(other).get()

	with pytest.raises(NotFound):
		object_soft_delete(actor=owner, obj=foreign, perm=Perm.MEMBER_MANAGE)


def test_soft_delete_of_an_already_deleted_row_is_not_found(
	tenant: Tenant, owner: User, member_factory: Callable[..., User]
) -> None:
	membership = Membership.objects.for_tenant(tenant).get(user=member_factory(tenant))
	object_soft_delete(actor=owner, obj=membership, perm=Perm.MEMBER_MANAGE)

	with pytest.raises(NotFound):
		object_soft_delete(actor=owner, obj=membership, perm=Perm.MEMBER_MANAGE)


def test_role_map_is_layered_as_documented() -> None:
	assert role_allows(Role.VIEWER, Perm.RUN_VIEW)
	assert not role_allows(Role.VIEWER, Perm.RUN_START)
	assert role_allows(Role.EDITOR, Perm.WORKFLOW_EDIT)
	assert not role_allows(Role.EDITOR, Perm.APPROVAL_DECIDE)
	assert role_allows(Role.OPERATOR, Perm.APPROVAL_DECIDE)
	assert not role_allows(Role.OPERATOR, Perm.WORKFLOW_EDIT)
	assert ROLE_PERMISSIONS[Role.EDITOR] | ROLE_PERMISSIONS[Role.OPERATOR] <= ROLE_PERMISSIONS[Role.ADMIN]
	assert ROLE_PERMISSIONS[Role.OWNER] - ROLE_PERMISSIONS[Role.ADMIN] == {
		Perm.TENANT_DELETE,
		Perm.OWNER_MANAGE,
	}
	assert Role.ADMIN.label == "Admin"


def test_superuser_passes_every_check(tenant: Tenant, user_factory: Callable[..., User]) -> None:
	root = user_factory(is_superuser=True)

	assert require(actor=root, tenant=tenant, perm=Perm.TENANT_DELETE) is None


def test_inactive_tenant_has_no_members(tenant: Tenant, owner: User) -> None:
	tenant.is_active = False
	tenant.save()

	with pytest.raises(NotFound):
		require(actor=owner, tenant=tenant, perm=Perm.TENANT_VIEW)


def test_token_model_usability(tenant: Tenant, owner: User) -> None:
	raw, prefix, key_hash = ApiToken.generate()

	assert raw.startswith("apg_")
	assert raw.startswith(prefix)
	assert key_hash != raw
	assert len(key_hash) == 64


def test_a_request_that_demotes_its_own_owner_cannot_then_change_owners(
	tenant: Tenant, owner: User, member_factory: Callable[..., User]
) -> None:
	other_owner = member_factory(tenant, Role.OWNER)
	mine = Membership.objects.for_tenant(tenant).get(user=owner)
	theirs = Membership.objects.for_tenant(tenant).get(user=other_owner)
	# As an API request's authentication does: later checks in the request reuse this.
	membership_remember(user=owner, tenant=tenant, membership=mine)

	membership_change_role(actor=owner, tenant=tenant, membership=mine, role="admin")

	with pytest.raises(PermissionDenied):
		membership_change_role(actor=owner, tenant=tenant, membership=theirs, role="admin")
	assert Membership.objects.for_tenant(tenant).get(user=other_owner).role == Role.OWNER


def test_a_remembered_membership_answers_for_its_own_tenant_only(
	tenant_factory: Callable[..., Tenant], owner: User, tenant: Tenant, member_factory: Callable[..., User]
) -> None:
	other = tenant_factory()
	Membership.objects.for_tenant(other).create(tenant=other, user=owner, role=Role.VIEWER)
	membership_remember(
		user=owner, tenant=tenant, membership=Membership.objects.for_tenant(tenant).get(user=owner)
	)

	assert require(actor=owner, tenant=tenant, perm=Perm.TENANT_MANAGE) is not None
	with pytest.raises(PermissionDenied):
		require(actor=owner, tenant=other, perm=Perm.TENANT_MANAGE)
