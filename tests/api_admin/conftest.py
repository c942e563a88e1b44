"""Fixtures for the bulk, admin, limits and versioning API tests: the runs API's, shared as they are."""

from __future__ import annotations

from tests.api_runs import conftest as runs_fixtures
from tests.engine import conftest as engine_fixtures

# pytest finds fixtures by module attribute: the eager engine, published flows, a client per role.
eager = engine_fixtures.eager
publish = engine_fixtures.publish
settle = engine_fixtures.settle
flows = runs_fixtures.flows
clients = runs_fixtures.clients
api = runs_fixtures.api

PROBLEM = "application/problem+json"
