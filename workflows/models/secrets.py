"""Tenant secrets: values workflows use by name (``${ .secrets.NAME }``), encrypted at rest."""

from __future__ import annotations

from typing import ClassVar

from django.core.validators import RegexValidator
from django.db import models

from workflows.models.base import TenantOwnedModel

__all__ = ["SECRET_NAME", "Secret"]

SECRET_NAME = RegexValidator(
	r"^[A-Za-z_][A-Za-z0-9_]{0,99}$",
	"Use 1 to 100 letters, digits and underscores, starting with a letter or underscore.",
)


class Secret(TenantOwnedModel):
	"""A named secret of one tenant. Only its ciphertext is stored; no API ever returns the value."""

	name = models.CharField(max_length=100, validators=[SECRET_NAME])
	description = models.CharField(max_length=500, blank=True)
	ciphertext = models.TextField()

	class Meta:
		constraints: ClassVar = [
			models.UniqueConstraint(
				fields=["tenant", "name"],
				condition=models.Q(deleted_at__isnull=True),
				name="secret_unique_live_name",
			),
		]

	def __str__(self) -> str:
		return self.name
