"""The policy-enforcing transport: one resolution, checked addresses, names kept for TLS and Host."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import httpcore
import httpx
import pytest

from connectors import transport
from connectors.builtin.http import request as http_request
from connectors.errors import ActionError, PermanentError, RetryableError
from connectors.network import IPAddress, NetworkPolicy
from connectors.sdk import ActionContext, execute
from connectors.transport import PolicyNetworkBackend, PolicyTransport, create_client, system_resolver
from tests.connectors.conftest import ServerInfo

MakeCtx = Callable[..., ActionContext]


def fake_resolver(answers: dict[str, list[list[str]]], calls: list[str]) -> transport.Resolver:
	"""A resolver answering each name from a script: the first list first, the last one after."""

	async def resolve(host: str, port: int) -> Sequence[IPAddress]:
		calls.append(host)
		script = answers[host]
		current = script[min(len(calls) - 1, len(script) - 1)]
		return [ipaddress.ip_address(address) for address in current]

	return resolve


async def test_dns_rebinding_gets_no_second_lookup(
	http_server: ServerInfo, make_ctx: MakeCtx, monkeypatch: pytest.MonkeyPatch
) -> None:
	# Given a name that answers "allowed" once and "internal" on every later lookup,
	calls: list[str] = []
	monkeypatch.setattr(
		transport, "system_resolver", fake_resolver({"rebind.test": [["127.0.0.1"], ["10.0.0.1"]]}, calls)
	)

	# when the action fetches it,
	result = await execute(
		http_request, params={"url": f"http://rebind.test:{http_server.port}/echo"}, ctx=make_ctx()
	)

	# then it was resolved once, and the connection went to the checked address with the name kept.
	assert calls == ["rebind.test"]
	assert result["body"]["headers"]["host"] == f"rebind.test:{http_server.port}"


async def test_a_name_with_any_internal_address_is_refused(
	http_server: ServerInfo, make_ctx: MakeCtx, monkeypatch: pytest.MonkeyPatch
) -> None:
	monkeypatch.setattr(
		transport, "system_resolver", fake_resolver({"mixed.test": [["127.0.0.1", "10.1.2.3"]]}, [])
	)

	with pytest.raises(PermanentError) as caught:
		await execute(http_request, params={"url": f"http://mixed.test:{http_server.port}/"}, ctx=make_ctx())

	assert caught.value.code == "address_not_allowed"
	assert "10.1.2.3" in caught.value.message
	assert http_server.requests == []


async def test_an_allowlisted_name_may_resolve_anywhere(
	http_server: ServerInfo, make_ctx: MakeCtx, monkeypatch: pytest.MonkeyPatch
) -> None:
	monkeypatch.setattr(transport, "system_resolver", fake_resolver({"db.corp.test": [["127.0.0.1"]]}, []))
	ctx = make_ctx(network=NetworkPolicy(allowlist=("*.corp.test",)))

	result = await execute(
		http_request, params={"url": f"http://db.corp.test:{http_server.port}/echo"}, ctx=ctx
	)

	assert result["status"] == 200


async def test_the_first_address_that_answers_is_used(
	http_server: ServerInfo,
	make_ctx: MakeCtx,
	monkeypatch: pytest.MonkeyPatch,
	no_outbound_traffic: list[Any],
) -> None:
	# 127.0.0.2 is loopback too, but nothing listens there on this port.
	monkeypatch.setattr(
		transport, "system_resolver", fake_resolver({"multi.test": [["127.0.0.2", "127.0.0.1"]]}, [])
	)
	ctx = make_ctx(network=NetworkPolicy(allowlist=("127.0.0.0/8",)))

	result = await execute(
		http_request, params={"url": f"http://multi.test:{http_server.port}/echo"}, ctx=ctx
	)

	assert result["status"] == 200
	assert [address[0] for address in no_outbound_traffic] == ["127.0.0.2", "127.0.0.1"]


async def test_when_no_address_answers_the_failure_is_retryable(
	http_server: ServerInfo, make_ctx: MakeCtx, monkeypatch: pytest.MonkeyPatch
) -> None:
	monkeypatch.setattr(transport, "system_resolver", fake_resolver({"down.test": [["127.0.0.2"]]}, []))
	ctx = make_ctx(network=NetworkPolicy(allowlist=("127.0.0.0/8",)))

	with pytest.raises(RetryableError) as caught:
		await execute(http_request, params={"url": f"http://down.test:{http_server.port}/"}, ctx=ctx)

	assert caught.value.code == "connection_error"


async def test_a_name_that_does_not_resolve_is_retryable(
	make_ctx: MakeCtx, monkeypatch: pytest.MonkeyPatch
) -> None:
	async def no_such_host(*args: Any, **kwargs: Any) -> Any:
		raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

	monkeypatch.setattr(anyio, "getaddrinfo", no_such_host)

	with pytest.raises(RetryableError) as caught:
		await execute(http_request, params={"url": "http://nowhere.test/"}, ctx=make_ctx())

	assert caught.value.code == "host_not_resolved"
	assert "nowhere.test" in caught.value.message


async def test_the_system_resolver_returns_every_address_of_a_name() -> None:
	addresses = await system_resolver("localhost", 80)

	assert addresses
	assert all(address.is_loopback for address in addresses)


async def test_the_system_resolver_rejects_unencodable_names_without_a_lookup() -> None:
	with pytest.raises(RetryableError) as caught:
		await system_resolver("a" * 64 + ".test", 80)

	assert caught.value.code == "host_not_resolved"


async def test_slow_resolution_is_a_connect_timeout() -> None:
	async def slow(host: str, port: int) -> Sequence[IPAddress]:
		await asyncio.sleep(5)
		return []

	backend = PolicyNetworkBackend(NetworkPolicy(), resolver=slow)

	with pytest.raises(httpcore.ConnectTimeout):
		await backend.connect_tcp("slow.test", 80, timeout=0.05)


async def test_a_name_without_addresses_cannot_connect() -> None:
	async def empty(host: str, port: int) -> Sequence[IPAddress]:
		return []

	backend = PolicyNetworkBackend(NetworkPolicy(), resolver=empty)

	with pytest.raises(httpcore.ConnectError, match="resolved to no addresses"):
		await backend.connect_tcp("empty.test", 80)


async def test_unix_sockets_are_refused() -> None:
	backend = PolicyNetworkBackend(NetworkPolicy(allow_private=True))

	with pytest.raises(PermanentError, match="Unix socket"):
		await backend.connect_unix_socket("/var/run/docker.sock")


async def test_the_backend_sleeps_like_its_inner_backend() -> None:
	await PolicyNetworkBackend(NetworkPolicy()).sleep(0)


async def test_tls_verifies_and_sends_the_name_while_connecting_to_the_checked_ip(
	tls_server: tuple[ServerInfo, ssl.SSLContext], make_ctx: MakeCtx, monkeypatch: pytest.MonkeyPatch
) -> None:
	# Given an HTTPS server whose certificate names only api.test, reached through a resolver
	server, trusted = tls_server
	monkeypatch.setattr(transport, "default_ssl_context", lambda: trusted)
	monkeypatch.setattr(transport, "system_resolver", fake_resolver({"api.test": [["127.0.0.1"]]}, []))

	# when the action calls it by name,
	result = await execute(http_request, params={"url": server.url("/echo")}, ctx=make_ctx())

	# then the certificate verified against the name, SNI carried it, and so did Host.
	assert result["status"] == 200
	assert server.sni == ["api.test"]
	assert result["body"]["headers"]["host"] == f"api.test:{server.port}"


async def test_tls_to_a_name_the_certificate_does_not_cover_fails(
	tls_server: tuple[ServerInfo, ssl.SSLContext], make_ctx: MakeCtx, monkeypatch: pytest.MonkeyPatch
) -> None:
	server, trusted = tls_server
	monkeypatch.setattr(transport, "default_ssl_context", lambda: trusted)
	monkeypatch.setattr(transport, "system_resolver", fake_resolver({"other.test": [["127.0.0.1"]]}, []))

	with pytest.raises(ActionError) as caught:
		await execute(http_request, params={"url": f"https://other.test:{server.port}/echo"}, ctx=make_ctx())

	assert caught.value.code == "connection_error"
	assert server.requests == []


def test_the_default_tls_context_is_built_once() -> None:
	assert transport.default_ssl_context() is transport.default_ssl_context()


async def test_create_client_gives_an_httpx_client_bound_to_the_policy(http_server: ServerInfo) -> None:
	async with create_client(NetworkPolicy(allowlist=("127.0.0.1",)), timeout=5) as client:
		response = await client.get(http_server.url("/text"))
		assert response.status_code == 200
		assert response.request.headers["user-agent"] == transport.USER_AGENT

	async with create_client(NetworkPolicy(), timeout=5) as client:
		with pytest.raises(PermanentError, match="loopback"):
			await client.get(http_server.url("/text"))


async def test_transport_errors_surface_as_httpx_errors(http_server: ServerInfo) -> None:
	policy_transport = PolicyTransport(NetworkPolicy(allowlist=("127.0.0.1",)))
	request = httpx.Request("GET", http_server.url("/truncated"))
	try:
		response = await policy_transport.handle_async_request(request)
		with pytest.raises(httpx.RemoteProtocolError):
			await response.aread()
	finally:
		await policy_transport.aclose()
