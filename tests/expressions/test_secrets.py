"""Secrets travel as markers; connectors resolve them, outputs redact them."""

from __future__ import annotations

from typing import Any

import pytest

from workflows.expressions import (
	REDACTED,
	UnknownSecretError,
	compile_template,
	find_secret_refs,
	redact,
	resolve_secret_refs,
	secret_marker,
	secret_markers,
)

SECRETS = {"api_token": "tok-123", "db.password": 'p"w\\d', "pin": "4242"}


def test_expressions_only_ever_see_markers(context: dict[str, Any]) -> None:
	template = compile_template(
		{"headers": {"Authorization": "Bearer ${ $secrets.api_token }"}, "token": "${ $secrets.api_token }"}
	)

	evaluated = template.evaluate(context)

	assert evaluated == {
		"headers": {"Authorization": "Bearer secret://api_token"},
		"token": "secret://api_token",
	}
	assert "tok-123" not in repr(evaluated)


def test_connectors_resolve_markers_just_before_use() -> None:
	value = {
		"headers": {"Authorization": "Bearer secret://api_token"},
		"dsn": "postgres://app:secret://db.password@db/app",
		"pins": ["secret://pin", 1, None, True],
		"untouched": "no secrets here",
	}
	looked_up: list[str] = []

	def lookup(name: str) -> str:
		looked_up.append(name)
		return SECRETS[name]

	resolved = resolve_secret_refs({**value, "again": "secret://pin"}, lookup)

	assert resolved["headers"] == {"Authorization": "Bearer tok-123"}
	assert resolved["dsn"] == 'postgres://app:p"w\\d@db/app'
	assert resolved["pins"] == ["4242", 1, None, True]
	assert resolved["again"] == "4242"
	assert resolved["untouched"] == "no secrets here"
	assert sorted(looked_up) == ["api_token", "db.password", "pin"]  # each looked up once
	assert value["pins"][0] == "secret://pin"  # the input is not modified


def test_a_marker_ends_before_trailing_punctuation() -> None:
	assert resolve_secret_refs("use secret://pin.", SECRETS.__getitem__) == "use 4242."


def test_unknown_secrets_are_a_clear_error() -> None:
	with pytest.raises(
		UnknownSecretError, match=r"secret 'missing' is not defined \(referenced as secret://missing\)"
	) as caught:
		resolve_secret_refs({"a": ["x secret://missing y"]}, SECRETS.__getitem__)

	assert caught.value.name == "missing"
	assert str(caught.value.at(node_id="charge")).startswith("node 'charge': secret 'missing'")


def test_find_secret_refs_lists_every_referenced_name() -> None:
	assert find_secret_refs({"a": "secret://api_token", "b": ["x secret://pin y secret://pin"], "c": 3}) == {
		"api_token",
		"pin",
	}


def test_redact_hides_every_occurrence() -> None:
	output = {
		"echo": "the token is tok-123, again tok-123",
		"tok-123": "as a key",
		"nested": [{"body": '{"password": "p\\"w\\\\d"}'}],
		"number": 424242,
		"flag": True,
		"nothing": None,
		"tuple": ("tok-123",),
	}

	redacted = redact(output, SECRETS.values())

	assert redacted == {
		"echo": "the token is ***, again ***",
		"***": "as a key",
		"nested": [{"body": '{"password": "***"}'}],
		"number": REDACTED,
		"flag": True,
		"nothing": None,
		"tuple": ["***"],
	}


def test_redact_prefers_the_longest_secret() -> None:
	assert redact("abc-secret and abc", ["abc", "abc-secret"]) == "*** and ***"


def test_redact_without_secrets_changes_nothing() -> None:
	value = {"a": "b"}

	assert redact(value, ["", ""]) is value


def test_secret_names_are_validated() -> None:
	assert secret_marker("stripe.live-key_2") == "secret://stripe.live-key_2"
	assert secret_markers(["a", "b"]) == {"a": "secret://a", "b": "secret://b"}
	for bad in ["", "trailing.", "sp ace", "-lead"]:
		with pytest.raises(ValueError, match="not a valid secret name"):
			secret_marker(bad)
