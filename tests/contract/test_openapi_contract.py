"""The OpenAPI document is a contract: every operation in it, fuzzed with schemathesis.

Every operation the document lists when the tests run (new endpoints included, with no
list to keep up to date) is called with generated valid and invalid requests, in-process
through Django's WSGI application, with an owner's token. For about half the examples the
path's ids are replaced by real ones of the organization (so detail and action endpoints
answer 200s and 409s, not only 404s). Each answer must:

- not be a server error (5xx);
- have a status code the document lists for the operation;
- have a content type the document lists for that status (errors: problem+json);
- match the documented schema.

Each example runs in a savepoint that is rolled back, so every example sees the same data.
Hypothesis is derandomized (the same examples on every run) and bounded to a few examples
per operation.

The operations are parametrized here rather than with ``schema.parametrize()``: on pytest 9
schemathesis gives all its items one node id, and pytest-xdist then reports a single result
for all of them, so a failing operation could pass unnoticed.
"""

from __future__ import annotations

from typing import Any

import hypothesis
import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from django.db import transaction
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import (
	content_type_conformance,
	response_schema_conformance,
	status_code_conformance,
)

from tests.contract.conftest import World

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("in_process_requests")]

EXAMPLES_PER_OPERATION = 10
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", get_wsgi_application())


def _operations() -> dict[str, APIOperation]:
	found: dict[str, APIOperation] = {}
	for result in schema.get_all_operations():
		if isinstance(result, Err):
			raise result.err()  # the document itself is broken: fail collection, loudly
		found[result.ok().label] = result.ok()
	return found


OPERATIONS = _operations()


def with_real_ids(case: Any, world: World, pick: int) -> None:
	"""Replace each path id the organization has one of by a real one (the ``pick``-th)."""
	for name in case.path_parameters or {}:
		if name in world.ids:
			case.path_parameters[name] = world.ids[name][pick % len(world.ids[name])]


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_every_operation_keeps_to_the_document(label: str, world: World) -> None:
	operation = OPERATIONS[label]
	cases = st.one_of([operation.as_strategy(generation_mode=mode) for mode in GenerationMode])

	@hypothesis.settings(
		max_examples=EXAMPLES_PER_OPERATION,
		derandomize=True,
		database=None,
		deadline=None,
		suppress_health_check=[hypothesis.HealthCheck.too_slow],
	)
	@hypothesis.given(case=cases, real_ids=st.booleans(), pick=st.integers(min_value=0, max_value=99))
	def check(case: Any, real_ids: bool, pick: int) -> None:
		if real_ids:
			with_real_ids(case, world, pick)
		with transaction.atomic():
			response = case.call(headers={"Authorization": f"Bearer {world.token}"})
			transaction.set_rollback(True)
		case.validate_response(response, checks=CHECKS)

	check()


def test_every_operation_of_the_document_is_fuzzed() -> None:
	documented = {
		f"{method.upper()} {route}"
		for route, item in schema.raw_schema["paths"].items()
		for method in item
		if method in ("get", "post", "put", "patch", "delete")
	}

	assert documented == set(OPERATIONS)
	assert len(OPERATIONS) > 50
