"""Query budgets: too deep, too expensive, too many aliases or root fields is refused before it runs."""

from __future__ import annotations

from unittest import mock

import pytest
from django.test import override_settings
from graphql import get_introspection_query

from tests.graphql.conftest import Gql
from workflows.models import Workflow

pytestmark = pytest.mark.django_db

DEEP = (
	"{ runs { edges { node { workflow { runs { edges { node { workflow"
	" { runs { edges { node { id } } } } } } } } } } } }"
)
NESTED = "{ workflows { edges { node { runs { edges { node { steps { attempts { id } } } } } } } } }"
# runs: 1 + 3 x (edges: 1 + (node: 1 + id 1 + steps (1 + 10 x key 1)) + pageInfo: 1 + 1) = 49; 5 deep.
SMALL = (
	"query($n: Int = 3) { runs(first: $n) { edges { node { id steps { key } } } pageInfo { hasNextPage } } }"
)


def test_a_query_deeper_than_the_limit_is_refused_before_it_runs(gql: Gql) -> None:
	with mock.patch("workflows.graphql.types.run_list") as run_list:
		reply = gql(DEEP)

	assert run_list.call_count == 0
	assert reply.status == 400
	assert reply.data is None
	assert reply.codes == ["QUERY_TOO_DEEP"]
	assert reply.error["extensions"]["limit"] == 10
	assert reply.error["extensions"]["actual"] == 12
	assert "12 levels deep" in reply.error["message"]
	assert "GRAPHQL_MAX_DEPTH" in reply.error["message"]


def test_the_deepest_useful_query_fits(gql: Gql) -> None:
	assert gql(NESTED).ok() == {"workflows": {"edges": []}}


def test_a_named_operation_is_named_in_the_refusal(gql: Gql) -> None:
	reply = gql("query Everything " + DEEP)

	assert reply.error["message"].startswith("Operation 'Everything' is 12 levels deep")


def test_complexity_multiplies_by_page_sizes(gql: Gql) -> None:
	with override_settings(GRAPHQL_MAX_COMPLEXITY=48):
		refused = gql(SMALL)
		smaller = gql(SMALL, {"n": 2})
	with override_settings(GRAPHQL_MAX_COMPLEXITY=49):
		allowed = gql(SMALL)

	assert refused.codes == ["QUERY_TOO_COMPLEX"]
	assert (refused.error["extensions"]["actual"], refused.error["extensions"]["limit"]) == (49, 48)
	assert "complexity of 49" in refused.error["message"]
	assert "GRAPHQL_MAX_COMPLEXITY" in refused.error["message"]
	assert smaller.ok() == {"runs": {"edges": [], "pageInfo": {"hasNextPage": False}}}
	assert allowed.ok()["runs"]["edges"] == []


def test_a_big_nested_page_is_refused(gql: Gql) -> None:
	reply = gql(
		"{ workflows(first: 100) { edges { node { runs(first: 100) { edges { node { id steps { key } } } } } } } }"
	)

	assert reply.codes == ["QUERY_TOO_COMPLEX"]
	assert reply.error["extensions"]["actual"] == 140_301


def test_a_page_over_the_size_limit_is_told_the_page_limit_not_the_complexity(gql: Gql) -> None:
	reply = gql("{ runs(first: 5000) { edges { cursor } } }")

	assert reply.pointers() == {"/first"}
	assert "from 1 to 100" in reply.error["message"]


def test_defaults_and_null_pages_are_priced_as_they_run(gql: Gql) -> None:
	# first left out, null, or a variable not sent: the default page of 20 (1 + 20 x (1 + 1) = 41).
	with override_settings(GRAPHQL_MAX_COMPLEXITY=41):
		left_out = gql("{ runs { edges { cursor } } }")
		null = gql("{ runs(first: null) { edges { cursor } } }")
		not_sent = gql("query($n: Int) { runs(first: $n) { edges { cursor } } }")
	with override_settings(GRAPHQL_MAX_COMPLEXITY=40):
		over = gql("{ runs { edges { cursor } } }")

	assert left_out.ok() == null.ok() == not_sent.ok() == {"runs": {"edges": []}}
	assert over.codes == ["QUERY_TOO_COMPLEX"]


def test_fragments_count_where_they_are_spread(gql: Gql) -> None:
	query = (
		"query { ...Runs } fragment Runs on Query { runs { edges { node { ...Deep } } } }"
		" fragment Deep on Run { workflow { runs { edges { node { ... on Run { workflow"
		" { runs { edges { node { id } } } } } } } } } }"
	)

	assert gql(query).codes == ["QUERY_TOO_DEEP"]


def test_a_fragment_spread_many_times_is_measured_once_and_counted_each_time(gql: Gql) -> None:
	spreads = " ".join(f"r{n}: runs(first: 1) {{ ...R }}" for n in range(5))
	query = f"query {{ {spreads} }} fragment R on RunConnection {{ edges {{ node {{ id }} }} }}"

	with override_settings(GRAPHQL_MAX_COMPLEXITY=19):
		# each: 1 + 1 x (edges 1 + node 1 + id 1) = 4; five of them: 20.
		reply = gql(query)

	assert reply.error["extensions"]["actual"] == 20


def test_cyclic_fragments_are_a_validation_error_not_a_crash(gql: Gql) -> None:
	reply = gql("query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }")

	assert reply.status == 400
	assert "GRAPHQL_VALIDATION_FAILED" in reply.codes
	assert any("within itself" in e["message"] for e in reply.errors)


def test_too_many_aliases(gql: Gql) -> None:
	many = " ".join(f"a{n}: username" for n in range(31))

	reply = gql(f"{{ viewer {{ {many} }} }}")

	assert reply.codes == ["TOO_MANY_ALIASES"]
	assert "31 aliases" in reply.error["message"]
	assert "GRAPHQL_MAX_ALIASES" in reply.error["message"]


def test_too_many_top_level_fields(gql: Gql) -> None:
	fields = " ".join(f"v{n}: viewer {{ username }}" for n in range(21))

	reply = gql(f"{{ {fields} }}")

	assert reply.codes == ["TOO_MANY_ROOT_FIELDS"]
	assert "21 top-level fields" in reply.error["message"]


def test_root_fields_in_fragments_count_too(gql: Gql) -> None:
	fields = " ".join(f"v{n}: viewer {{ username }}" for n in range(11))
	query = f"query {{ ...Half ... on Query {{ ...Half }} }} fragment Half on Query {{ {fields} }}"

	with override_settings(GRAPHQL_MAX_ALIASES=100):
		reply = gql(query)

	assert reply.codes == ["TOO_MANY_ROOT_FIELDS"]
	assert reply.error["extensions"]["actual"] == 22


def test_mutations_are_measured_too(gql: Gql) -> None:
	deep = (
		'mutation { runStart(workflowId: "x") { run { workflow { runs { edges { node { workflow'
		" { runs { edges { node { id } } } } } } } } } } }"
	)

	assert gql(deep).codes == ["QUERY_TOO_DEEP"]


def test_introspection_is_free_so_graphiql_works(gql: Gql) -> None:
	with override_settings(GRAPHQL_MAX_DEPTH=3, GRAPHQL_MAX_COMPLEXITY=5):
		reply = gql(get_introspection_query())
		typename = gql("{ __typename viewer { __typename username } }")

	assert reply.ok()["__schema"]["queryType"]["name"] == "Query"
	assert typename.ok()["viewer"]["__typename"] == "Viewer"


def test_unknown_fields_are_reported_by_the_standard_rules(gql: Gql) -> None:
	reply = gql("{ nothing { here } viewer { username } }")

	assert reply.codes == ["GRAPHQL_VALIDATION_FAILED"]
	assert "nothing" in reply.error["message"]


@pytest.mark.usefixtures("eager")
def test_limits_come_from_settings(gql: Gql, flows: dict[str, Workflow]) -> None:
	with override_settings(GRAPHQL_MAX_DEPTH=2):
		reply = gql("{ runs { edges { cursor } } }")
	with override_settings(GRAPHQL_MAX_PAGE_SIZE=2):
		page = gql("{ runs(first: 3) { edges { cursor } } }")

	assert reply.error["extensions"] == {"code": "QUERY_TOO_DEEP", "limit": 2, "actual": 3}
	assert "from 1 to 2" in page.error["message"]
