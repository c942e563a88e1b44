"""The http.request action against real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import base64
import email.utils
import ipaddress
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest

from connectors import transport
from connectors.builtin.http import MAX_RESPONSE_BYTES
from connectors.builtin.http import request as http_request
from connectors.errors import ActionError, ActionTimeout, PermanentError, RetryableError
from connectors.network import NetworkPolicy
from connectors.sdk import ActionContext, execute
from tests.connectors.conftest import ServerInfo

MakeCtx = Callable[..., ActionContext]


async def call(ctx: ActionContext, **params: Any) -> dict[str, Any]:
	return await execute(http_request, params=params, ctx=ctx)


async def fails(ctx: ActionContext, **params: Any) -> ActionError:
	with pytest.raises(ActionError) as caught:
		await call(ctx, **params)
	return caught.value


# --- bodies, headers, query ---------------------------------------------------------------


async def test_get_returns_status_lowercase_headers_and_parsed_json(
	http_server: ServerInfo, make_ctx: MakeCtx
) -> None:
	result = await call(make_ctx(), url=http_server.url("/echo"))

	assert result["status"] == 200
	assert result["headers"]["x-served-by"] == "echo"
	assert result["headers"]["content-type"] == "application/json"
	assert result["body"]["method"] == "GET"
	assert result["url"] == http_server.url("/echo")


async def test_text_responses_come_back_as_text(http_server: ServerInfo, make_ctx: MakeCtx) -> None:
	result = await call(make_ctx(), url=http_server.url("/text"))

	assert result["body"] == "hello, wörld"


@pytest.mark.parametrize(
	("content_type", "body", "expected"),
	[
		("application/problem+json", '{"title": "x"}', {"title": "x"}),
		("application/json", "not json at all", "not json at all"),
		("text/plain; charset=no-such-charset", "plain", "plain"),
		(None, "", None),
	],
	ids=["vendor-json-parsed", "mislabelled-json-as-text", "unknown-charset-as-utf8", "empty-is-null"],
)
async def test_bodies_are_decoded_by_content_type(
	http_server: ServerInfo, make_ctx: MakeCtx, content_type: str | None, body: str, expected: Any
) -> None:
	query = f"?body={quote(body)}" + (f"&type={quote(content_type)}" if content_type else "")

	result = await call(make_ctx(), url=http_server.url("/content" + query))

	assert result["body"] == expected


async def test_head_has_no_body(http_server: ServerInfo, make_ctx: MakeCtx) -> None:
	result = await call(make_ctx(), method="head", url=http_server.url("/text"))

	assert (result["status"], result["body"]) == (200, None)
	assert http_server.requests[0].method == "HEAD"


async def test_headers_and_query_are_sent(http_server: ServerInfo, make_ctx: MakeCtx) -> None:
	result = await call(
		make_ctx(),
		url=http_server.url("/echo?fixed=1"),
		headers={"X-Trace": "abc-123", "Accept": "application/json"},
		query={"q": "café & co", "page": 2, "exact": True, "tag": ["a", "b"]},
	)

	seen = http_server.requests[0]
	assert seen.headers["x-trace"] == "abc-123"
	assert seen.headers["accept"] == "application/json"
	assert seen.query == {
		"fixed": ["1"],
		"q": ["café & co"],
		"page": ["2"],
		"exact": ["true"],
		"tag": ["a", "b"],
	}
	assert result["body"]["query"]["tag"] == ["a", "b"]


async def test_post_sends_compact_json_with_content_type(http_server: ServerInfo, make_ctx: MakeCtx) -> None:
	await call(make_ctx(), method="POST", url=http_server.url("/echo"), body={"amount": 42, "name": "Zoë"})

	seen = http_server.requests[0]
	assert seen.headers["content-type"] == "application/json"
	assert seen.body.decode() == '{"amount":42,"name":"Zoë"}'


async def test_text_body_defaults_to_text_plain_and_keeps_a_given_content_type(
	http_server: ServerInfo, make_ctx: MakeCtx
) -> None:
	await call(make_ctx(), method="PUT", url=http_server.url("/echo"), body_text="a,b\n1,2\n")
	await call(
		make_ctx(),
		method="PUT",
		url=http_server.url("/echo"),
		body_text="a,b",
		headers={"content-type": "text/csv"},
	)

	first, second = http_server.requests
	assert (first.headers["content-type"], first.body) == ("text/plain; charset=utf-8", b"a,b\n1,2\n")
	assert second.headers["content-type"] == "text/csv"


# --- idempotency key ------------------------------------------------------------------------


async def test_post_carries_the_step_idempotency_key_and_get_does_not(
	http_server: ServerInfo, make_ctx: MakeCtx
) -> None:
	ctx = make_ctx(idempotency_key="run-1:charge:0:1")

	await call(ctx, method="POST", url=http_server.url("/echo"), body={"x": 1})
	await call(ctx, method="DELETE", url=http_server.url("/echo"))
	await call(ctx, method="GET", url=http_server.url("/echo"))

	post, delete, get = http_server.requests
	assert post.headers["idempotency-key"] == "run-1:charge:0:1"
	assert delete.headers["idempotency-key"] == "run-1:charge:0:1"
	assert "idempotency-key" not in get.headers


async def test_a_caller_supplied_idempotency_key_is_kept(http_server: ServerInfo, make_ctx: MakeCtx) -> None:
	await call(make_ctx(), method="POST", url=http_server.url("/echo"), headers={"idempotency-key": "mine"})

	assert http_server.requests[0].headers["idempotency-key"] == "mine"


# --- authentication -------------------------------------------------------------------------


def _basic(user: str, password: str) -> str:
	return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
	("auth", "header", "expected"),
	[
		(
			{"type": "basic", "username": "ada", "password": "s3cret:é"},
			"authorization",
			_basic("ada", "s3cret:é"),
		),
		({"type": "bearer", "token": "tok-123"}, "authorization", "Bearer tok-123"),
		({"type": "header", "name": "X-API-Key", "value": "key-9"}, "x-api-key", "key-9"),
	],
	ids=["basic", "bearer", "header"],
)
async def test_every_auth_mode_sends_its_credential(
	http_server: ServerInfo, make_ctx: MakeCtx, auth: dict[str, str], header: str, expected: str
) -> None:
	await call(make_ctx(), url=http_server.url("/echo"), auth=auth)

	assert http_server.requests[0].headers[header] == expected


async def test_no_auth_sends_nothing_even_with_a_connection(
	http_server: ServerInfo, make_ctx: MakeCtx
) -> None:
	await call(make_ctx(connection={"token": "t"}), url=http_server.url("/echo"), auth={"type": "none"})

	assert "authorization" not in http_server.requests[0].headers


@pytest.mark.parametrize(
	("connection", "header", "expected"),
	[
		({"token": "conn-token"}, "authorization", "Bearer conn-token"),
		({"username": "bob", "password": "pw"}, "authorization", _basic("bob", "pw")),
		({"header_name": "X-Key", "header_value": "v1"}, "x-key", "v1"),
	],
	ids=["token", "username-password", "header"],
)
async def test_the_connection_supplies_credentials_when_auth_is_omitted(
	http_server: ServerInfo, make_ctx: MakeCtx, connection: dict[str, str], header: str, expected: str
) -> None:
	await call(make_ctx(connection=connection), url=http_server.url("/echo"))

	assert http_server.requests[0].headers[header] == expected


async def test_a_connection_without_known_keys_adds_no_credentials(
	http_server: ServerInfo, make_ctx: MakeCtx
) -> None:
	await call(make_ctx(connection={"region": "eu"}), url=http_server.url("/echo"))

	assert "authorization" not in http_server.requests[0].headers


async def test_a_header_set_by_the_step_beats_the_connection_but_explicit_auth_beats_the_header(
	http_server: ServerInfo, make_ctx: MakeCtx
) -> None:
	ctx = make_ctx(connection={"token": "from-connection"})

	await call(ctx, url=http_server.url("/echo"), headers={"Authorization": "Token from-step"})
	await call(
		ctx,
		url=http_server.url("/echo"),
		headers={"authorization": "Token from-step"},
		auth={"type": "bearer", "token": "from-auth"},
	)

	assert http_server.requests[0].headers["authorization"] == "Token from-step"
	assert http_server.requests[1].headers["authorization"] == "Bearer from-auth"


# --- status classification ------------------------------------------------------------------


async def test_404_is_permanent_with_status_and_body_excerpt(
	http_server: ServerInfo, make_ctx: MakeCtx
) -> None:
	error = await fails(make_ctx(), url=http_server.url("/status/404?token=secret"))

	assert isinstance(error, PermanentError)
	assert error.code == "http_status"
	assert error.details["status"] == 404
	assert error.details["body_excerpt"] == "status 404 body"
	assert "check the URL" in error.message
	assert "secret" not in error.message  # the query string may hold credentials


async def test_429_is_retryable_and_reports_retry_after(http_server: ServerInfo, make_ctx: MakeCtx) -> None:
	error = await fails(make_ctx(), method="POST", url=http_server.url("/status/429?retry_after=7"))

	assert isinstance(error, RetryableError)
	assert error.details["retry_after_seconds"] == 7.0
	assert "retry after 7 s" in error.message


async def test_retry_after_as_an_http_date_becomes_seconds(
	http_server: ServerInfo, make_ctx: MakeCtx
) -> None:
	when = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)

	error = await fails(make_ctx(), url=http_server.url(f"/status/503?retry_after={quote(when)}"))

	assert 100 < error.details["retry_after_seconds"] <= 120


@pytest.mark.parametrize(
	("retry_after", "expected"),
	[("Wed, 21 Oct 2015 07:28:00 -0000", 0.0), ("soon", None)],
	ids=["past-date-without-zone", "garbage"],
)
async def test_odd_retry_after_values_are_tolerated(
	http_server: ServerInfo, make_ctx: MakeCtx, retry_after: str, expected: float | None
) -> None:
	error = await fails(make_ctx(), url=http_server.url(f"/status/503?retry_after={quote(retry_after)}"))

	assert error.details.get("retry_after_seconds") == expected


@pytest.mark.parametrize("status", [408, 425, 500, 502, 503, 504])
async def test_transient_statuses_are_retryable(
	http_server: ServerInfo, make_ctx: MakeCtx, status: int
) -> None:
	error = await fails(make_ctx(), url=http_server.url(f"/status/{status}"))

	assert error.retryable
	assert error.details["status"] == status


@pytest.mark.parametrize("status", [400, 401, 403, 409, 422])
async def test_client_errors_are_permanent(http_server: ServerInfo, make_ctx: MakeCtx, status: int) -> None:
	error = await fails(make_ctx(), url=http_server.url(f"/status/{status}"))

	assert not error.retryable
	assert f"returned {status}" in error.message


async def test_fail_on_status_off_returns_errors_as_results(
	http_server: ServerInfo, make_ctx: MakeCtx
) -> None:
	result = await call(make_ctx(), url=http_server.url("/status/500"), fail_on_status=False)

	assert (result["status"], result["body"]) == (500, "status 500 body")


# --- timeouts and connection failures ---------------------------------------------------------


async def test_a_slow_server_times_out_retryably(http_server: ServerInfo, make_ctx: MakeCtx) -> None:
	started = time.monotonic()

	error = await fails(make_ctx(), url=http_server.url("/slow?seconds=1"), timeout_seconds=0.2)

	assert isinstance(error, ActionTimeout)
	assert error.code == "http_timeout"
	assert error.retryable
	assert time.monotonic() - started < 0.9


async def test_a_refused_connection_is_retryable(make_ctx: MakeCtx) -> None:
	with socket_bound_and_closed() as port:
		error = await fails(make_ctx(), url=f"http://127.0.0.1:{port}/")

	assert isinstance(error, RetryableError)
	assert error.code == "connection_error"


async def test_a_truncated_response_is_retryable(http_server: ServerInfo, make_ctx: MakeCtx) -> None:
	error = await fails(make_ctx(), url=http_server.url("/truncated"))

	assert error.code == "connection_error"
	assert error.retryable


async def test_a_corrupt_compressed_body_is_permanent(http_server: ServerInfo, make_ctx: MakeCtx) -> None:
	error = await fails(make_ctx(), url=http_server.url("/gzip"))

	assert (error.code, error.retryable) == ("invalid_response", False)


# --- response size ----------------------------------------------------------------------------


async def test_a_response_over_the_limit_is_refused_from_its_content_length(
	http_server: ServerInfo, make_ctx: MakeCtx
) -> None:
	error = await fails(make_ctx(), url=http_server.url("/bytes?n=5000"), max_response_bytes=4096)

	assert (error.code, error.retryable) == ("response_too_large", False)
	assert "larger than 4 KiB" in error.message
	assert "max_response_bytes" in error.message


async def test_head_is_not_refused_for_the_length_it_declares(
	http_server: ServerInfo, make_ctx: MakeCtx
) -> None:
	result = await call(
		make_ctx(), method="HEAD", url=http_server.url("/bytes?n=5000"), max_response_bytes=4096
	)

	assert (result["status"], result["headers"]["content-length"], result["body"]) == (200, "5000", None)


async def test_a_response_without_length_is_cut_off_at_the_limit(
	http_server: ServerInfo, make_ctx: MakeCtx
) -> None:
	error = await fails(make_ctx(), url=http_server.url("/bytes?n=300000&length=0"), max_response_bytes=1000)

	assert error.code == "response_too_large"
	assert "1000 bytes" in error.message


async def test_the_limit_counts_decompressed_bytes(http_server: ServerInfo, make_ctx: MakeCtx) -> None:
	error = await fails(make_ctx(), url=http_server.url("/gzip?n=200000"), max_response_bytes=100000)

	assert error.code == "response_too_large"


async def test_a_response_within_the_limit_is_read_whole(http_server: ServerInfo, make_ctx: MakeCtx) -> None:
	result = await call(make_ctx(), url=http_server.url("/bytes?n=4096&length=0"), max_response_bytes=4096)

	assert result["body"] == "x" * 4096


async def test_the_limit_cannot_exceed_the_hard_maximum(make_ctx: MakeCtx) -> None:
	error = await fails(make_ctx(), url="http://127.0.0.1/", max_response_bytes=MAX_RESPONSE_BYTES + 1)

	assert error.code == "invalid_input"
	assert error.details["errors"][0]["pointer"] == "/max_response_bytes"


# --- redirects --------------------------------------------------------------------------------


async def test_redirects_are_followed(http_server: ServerInfo, make_ctx: MakeCtx) -> None:
	result = await call(make_ctx(), url=http_server.url("/redirect?to=/echo"))

	assert result["status"] == 200
	assert result["url"] == http_server.url("/echo")
	assert [seen.path for seen in http_server.requests] == ["/redirect", "/echo"]


async def test_a_redirect_is_returned_when_not_following(http_server: ServerInfo, make_ctx: MakeCtx) -> None:
	result = await call(make_ctx(), url=http_server.url("/redirect?to=/echo"), follow_redirects=False)

	assert result["status"] == 302
	assert result["headers"]["location"] == "/echo"


async def test_303_turns_a_post_into_a_get_without_body(http_server: ServerInfo, make_ctx: MakeCtx) -> None:
	result = await call(
		make_ctx(), method="POST", url=http_server.url("/redirect?status=303&to=/echo"), body={"a": 1}
	)

	assert result["body"]["method"] == "GET"
	assert result["body"]["body"] == ""
	assert "idempotency-key" not in result["body"]["headers"]
	assert "content-type" not in result["body"]["headers"]


async def test_307_repeats_the_method_and_body(http_server: ServerInfo, make_ctx: MakeCtx) -> None:
	result = await call(
		make_ctx(), method="POST", url=http_server.url("/redirect?status=307&to=/echo"), body={"a": 1}
	)

	assert result["body"]["method"] == "POST"
	assert result["body"]["body"] == '{"a":1}'
	assert result["body"]["headers"]["idempotency-key"] == "idem-key-1"


async def test_redirect_loops_stop_at_max_redirects(http_server: ServerInfo, make_ctx: MakeCtx) -> None:
	error = await fails(make_ctx(), url=http_server.url("/loop"), max_redirects=3)

	assert (error.code, error.retryable) == ("too_many_redirects", False)
	assert len(http_server.requests) == 4


async def test_credentials_are_dropped_on_a_cross_origin_redirect(
	http_server: ServerInfo, other_http_server: ServerInfo, make_ctx: MakeCtx
) -> None:
	elsewhere = quote(other_http_server.url("/echo"), safe="")
	ctx = make_ctx(connection={"token": "conn"})

	await call(
		ctx,
		url=http_server.url(f"/redirect?to={elsewhere}"),
		auth={"type": "header", "name": "X-API-Key", "value": "k"},
		headers={"Authorization": "Token t", "X-Other": "kept"},
	)
	await call(ctx, url=http_server.url("/redirect?to=/echo"), auth={"type": "bearer", "token": "b"})

	crossed = other_http_server.requests[0].headers
	assert "x-api-key" not in crossed
	assert "authorization" not in crossed
	assert crossed["x-other"] == "kept"
	same_origin = http_server.requests[-1].headers
	assert same_origin["authorization"] == "Bearer b"


async def test_a_redirect_to_a_private_address_is_refused_before_connecting(
	http_server: ServerInfo, make_ctx: MakeCtx, no_outbound_traffic: list[Any]
) -> None:
	error = await fails(make_ctx(), url=http_server.url("/redirect?to=http://10.0.0.1/admin"))

	assert error.code == "address_not_allowed"
	assert "10.0.0.1" in error.message
	assert all(address[0] == "127.0.0.1" for address in no_outbound_traffic)


async def test_a_redirect_to_a_name_for_an_internal_address_is_refused(
	http_server: ServerInfo, make_ctx: MakeCtx, monkeypatch: pytest.MonkeyPatch
) -> None:
	async def resolve(host: str, port: int) -> list[Any]:
		return [ipaddress.ip_address("10.0.0.7")] if host == "intranet.test" else []

	monkeypatch.setattr(transport, "system_resolver", resolve)
	target = quote(f"http://intranet.test:{http_server.port}/echo", safe="")

	error = await fails(make_ctx(), url=http_server.url(f"/redirect?to={target}"))

	assert error.code == "address_not_allowed"
	assert "intranet.test (10.0.0.7)" in error.message
	assert [seen.path for seen in http_server.requests] == ["/redirect"]


@pytest.mark.parametrize("target", ["file:///etc/passwd", "gopher://127.0.0.1/"])
async def test_a_redirect_to_another_scheme_is_refused(
	http_server: ServerInfo, make_ctx: MakeCtx, target: str
) -> None:
	error = await fails(make_ctx(), url=http_server.url(f"/redirect?to={quote(target, safe='')}"))

	assert (error.code, error.retryable) == ("scheme_not_allowed", False)


async def test_a_malformed_redirect_is_permanent(http_server: ServerInfo, make_ctx: MakeCtx) -> None:
	error = await fails(make_ctx(), url=http_server.url("/redirect?to=" + quote("http://[::1", safe="")))

	assert error.code == "invalid_redirect"


# --- the SSRF policy --------------------------------------------------------------------------


async def test_loopback_is_refused_by_default_with_a_way_to_allow_it(
	http_server: ServerInfo, make_ctx: MakeCtx
) -> None:
	error = await fails(make_ctx(network=NetworkPolicy()), url=http_server.url("/echo"))

	assert (error.code, error.retryable) == ("address_not_allowed", False)
	assert "127.0.0.1" in error.message
	assert "loopback" in error.message
	assert "allowlist" in error.message
	assert http_server.requests == []


async def test_loopback_is_reachable_once_allowlisted(http_server: ServerInfo, make_ctx: MakeCtx) -> None:
	for policy in (
		NetworkPolicy(allowlist=("127.0.0.1",)),
		NetworkPolicy(allowlist=("127.0.0.0/8",)),
		NetworkPolicy(allow_private=True),
	):
		result = await call(make_ctx(network=policy), url=http_server.url("/echo"))
		assert result["status"] == 200


@pytest.mark.parametrize(
	"url",
	[
		"http://10.0.0.1/",
		"http://169.254.169.254/latest/meta-data/",
		"http://[::1]:8080/",
		"http://[::ffff:127.0.0.1]/",
		"http://0.0.0.0/",
		"https://192.168.1.1/",
	],
)
async def test_internal_addresses_are_refused_without_traffic(
	make_ctx: MakeCtx, no_outbound_traffic: list[Any], url: str
) -> None:
	error = await fails(make_ctx(network=NetworkPolicy()), url=url)

	assert error.code == "address_not_allowed"
	assert no_outbound_traffic == []


async def test_non_http_urls_are_refused_as_invalid_input(make_ctx: MakeCtx) -> None:
	error = await fails(make_ctx(), url="file:///etc/passwd")

	assert error.code == "invalid_input"
	assert error.details["errors"] == [
		{
			"pointer": "/url",
			"message": "Value error, only http:// and https:// URLs are allowed",
			"type": "value_error",
		}
	]


# --- input validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
	("params", "pointer"),
	[
		({"url": "http://"}, "/url"),
		({"url": "http://[::1"}, "/url"),
		({"url": "http://x", "method": "BREW"}, "/method"),
		({"url": "http://x", "headers": {"Bad Name": "v"}}, "/headers"),
		({"url": "http://x", "headers": {"X-Ok": "line\r\nbreak"}}, "/headers"),
		({"url": "http://x", "body": {"a": 1}, "body_text": "b"}, ""),
		({"url": "http://x", "auth": {"type": "basic", "username": "u"}}, "/auth/password"),
		({"url": "http://x", "auth": {"type": "bearer", "token": "a\nb"}}, "/auth/token"),
		({"url": "http://x", "auth": {"type": "header", "name": "X Key", "value": "v"}}, "/auth/name"),
		({"url": "http://x", "auth": {"type": "header", "name": "X-Key", "value": "é"}}, "/auth/value"),
		({"url": "http://x", "timeout_seconds": 0}, "/timeout_seconds"),
	],
)
async def test_invalid_requests_point_at_the_field(
	make_ctx: MakeCtx, params: dict[str, Any], pointer: str
) -> None:
	error = await fails(make_ctx(), **params)

	assert error.code == "invalid_input"
	assert [item["pointer"] for item in error.details["errors"]] == [pointer]


def socket_bound_and_closed() -> Any:
	"""A context manager yielding a loopback port that nothing listens on."""
	import contextlib
	import socket

	@contextlib.contextmanager
	def port() -> Any:
		with socket.socket() as sock:
			sock.bind(("127.0.0.1", 0))
			number = sock.getsockname()[1]
		yield number

	return port()
