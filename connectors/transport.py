"""An httpx transport that enforces a :class:`~connectors.network.NetworkPolicy` at connect time.

httpx hands each new connection to an httpcore network backend as ``connect_tcp(host,
port)``. :class:`PolicyNetworkBackend` sits there: it resolves the host once, checks every
address against the policy, and opens the socket to a checked IP literal. httpcore still
uses the URL's host name for TLS (SNI and certificate verification) and httpx for the
``Host`` header, so servers see an ordinary request, while a DNS server that answers
differently the second time (DNS rebinding) never gets asked a second time. Redirects,
handled by the caller, open their connections through the same backend, so each target is
checked before any byte is sent to it.

The transport ignores proxy environment variables (a proxy would make the policy check the
proxy, not the destination); connectors that need an egress proxy are not supported yet.

Plain Python: no Django.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import ssl
from collections.abc import (
	AsyncIterable,
	AsyncIterator,
	Awaitable,
	Callable,
	Iterable,
	Iterator,
	Mapping,
	Sequence,
)
from typing import Any, Protocol, TypeAlias, cast

import anyio
import httpcore
import httpx

from connectors.errors import PermanentError
from connectors.network import IPAddress, NetworkPolicy, addresses_from_addrinfo, host_not_resolved, parse_ip

__all__ = [
	"USER_AGENT",
	"PolicyNetworkBackend",
	"PolicyTransport",
	"Resolver",
	"create_client",
	"default_ssl_context",
	"system_resolver",
]

USER_AGENT = "APG-Workflow-Orchestration/0.1"
"""The User-Agent outbound connectors send unless the caller sets one."""

Resolver: TypeAlias = Callable[[str, int], Awaitable[Sequence[IPAddress]]]
"""Resolves ``(host, port)`` to addresses; raises an ActionError when it cannot."""


async def system_resolver(host: str, port: int) -> Sequence[IPAddress]:
	"""Resolve with the system resolver (``getaddrinfo`` in a worker thread), all addresses.

	Raises:
		RetryableError: ``code="host_not_resolved"``.
	"""
	try:
		infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
	except (OSError, UnicodeError) as exc:
		raise host_not_resolved(host, exc) from None
	return addresses_from_addrinfo(infos)


@functools.cache
def default_ssl_context() -> ssl.SSLContext:
	"""The TLS settings of outbound connections: system defaults and certifi's CA bundle.

	Built once per process; loading the CA bundle takes milliseconds and the context is safe
	to share between connections.
	"""
	return httpx.create_ssl_context()


class PolicyNetworkBackend(httpcore.AsyncNetworkBackend):
	"""An httpcore network backend that connects only where a policy allows.

	Args:
		policy: Where connections may go.
		resolver: How to resolve host names; None uses :func:`system_resolver` (looked up at
			call time, so tests can replace it).
		inner: The backend that opens the checked connections; httpcore's AnyIO backend by default.
	"""

	def __init__(
		self,
		policy: NetworkPolicy,
		*,
		resolver: Resolver | None = None,
		inner: httpcore.AsyncNetworkBackend | None = None,
	) -> None:
		self.policy = policy
		self._resolver = resolver
		# httpcore declares AnyIOBackend twice (a stub when anyio is missing); anyio is installed.
		self._inner = inner or cast(httpcore.AsyncNetworkBackend, httpcore.AnyIOBackend())

	async def resolve(self, host: str, port: int, timeout: float | None) -> Sequence[IPAddress]:
		"""Resolve and check ``host``: the addresses a connection may use, in the resolver's order.

		Raises:
			PermanentError: An address is refused by the policy.
			RetryableError: The name did not resolve.
			httpcore.ConnectTimeout: Resolving took longer than ``timeout``.
		"""
		literal = parse_ip(host)
		if literal is not None:
			addresses: Sequence[IPAddress] = (literal,)
		else:
			resolver = self._resolver or system_resolver
			try:
				with anyio.fail_after(timeout):
					addresses = await resolver(host, port)
			except TimeoutError:
				raise httpcore.ConnectTimeout(f"resolving {host!r} took longer than {timeout} s") from None
		self.policy.check_addresses(host, addresses)
		return addresses

	async def connect_tcp(
		self,
		host: str,
		port: int,
		timeout: float | None = None,
		local_address: str | None = None,
		socket_options: Iterable[Any] | None = None,
	) -> httpcore.AsyncNetworkStream:
		"""Resolve and check ``host``, then connect to the first checked address that answers."""
		addresses = await self.resolve(host, port, timeout)
		options = None if socket_options is None else list(socket_options)
		failure: Exception = httpcore.ConnectError(f"{host!r} resolved to no addresses")
		for address in addresses:
			try:
				return await self._inner.connect_tcp(
					str(address), port, timeout=timeout, local_address=local_address, socket_options=options
				)
			except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
				failure = exc
		raise failure

	async def connect_unix_socket(
		self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
	) -> httpcore.AsyncNetworkStream:
		"""Refused: a Unix socket is a local resource, which the policy exists to protect."""
		raise PermanentError(
			"refused to connect to a Unix socket: outbound connectors reach network hosts only",
			code="address_not_allowed",
			details={"path": path},
		)

	async def sleep(self, seconds: float) -> None:
		"""Sleep, as the inner backend does."""
		await self._inner.sleep(seconds)


# httpcore raises its own exception types; httpx callers expect httpx's. Most specific first.
_EXCEPTIONS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
	(httpcore.ConnectTimeout, httpx.ConnectTimeout),
	(httpcore.ReadTimeout, httpx.ReadTimeout),
	(httpcore.WriteTimeout, httpx.WriteTimeout),
	(httpcore.PoolTimeout, httpx.PoolTimeout),
	(httpcore.TimeoutException, httpx.TimeoutException),
	(httpcore.ConnectError, httpx.ConnectError),
	(httpcore.ReadError, httpx.ReadError),
	(httpcore.WriteError, httpx.WriteError),
	(httpcore.NetworkError, httpx.NetworkError),
	(httpcore.ProxyError, httpx.ProxyError),
	(httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
	(httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
	(httpcore.LocalProtocolError, httpx.LocalProtocolError),
	(httpcore.ProtocolError, httpx.ProtocolError),
)


@contextlib.contextmanager
def _httpx_errors(request: httpx.Request) -> Iterator[None]:
	try:
		yield
	except Exception as exc:
		mapped = next((target for source, target in _EXCEPTIONS if isinstance(exc, source)), None)
		if mapped is None:
			raise
		raise mapped(str(exc), request=request) from exc


class _CoreStream(AsyncIterable[bytes], Protocol):
	async def aclose(self) -> None: ...


class _ResponseStream(httpx.AsyncByteStream):
	def __init__(self, stream: _CoreStream, request: httpx.Request) -> None:
		self._stream = stream
		self._request = request

	async def __aiter__(self) -> AsyncIterator[bytes]:
		with _httpx_errors(self._request):
			async for part in self._stream:
				yield part

	async def aclose(self) -> None:
		await self._stream.aclose()


class PolicyTransport(httpx.AsyncBaseTransport):
	"""An httpx transport whose every connection is checked by :class:`PolicyNetworkBackend`.

	Args:
		policy: Where connections may go.
		ssl_context: TLS settings; None uses :func:`default_ssl_context`.
		resolver: Host name resolver for the backend; None uses :func:`system_resolver`.
		max_connections: Connections kept open at once.
		keepalive_expiry: Seconds an idle connection stays open for reuse.
	"""

	def __init__(
		self,
		policy: NetworkPolicy,
		*,
		ssl_context: ssl.SSLContext | None = None,
		resolver: Resolver | None = None,
		max_connections: int = 10,
		keepalive_expiry: float = 5.0,
	) -> None:
		self._pool = httpcore.AsyncConnectionPool(
			ssl_context=ssl_context or default_ssl_context(),
			max_connections=max_connections,
			keepalive_expiry=keepalive_expiry,
			network_backend=PolicyNetworkBackend(policy, resolver=resolver),
			retries=0,
		)

	async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
		"""Send ``request`` over a checked connection."""
		core_request = httpcore.Request(
			method=request.method,
			url=httpcore.URL(
				scheme=request.url.raw_scheme,
				host=request.url.raw_host,
				port=request.url.port,
				target=request.url.raw_path,
			),
			headers=request.headers.raw,
			content=request.stream,
			extensions=request.extensions,
		)
		with _httpx_errors(request):
			response = await self._pool.handle_async_request(core_request)
		return httpx.Response(
			status_code=response.status,
			headers=response.headers,
			# The async pool always streams with an async, closable iterator.
			stream=_ResponseStream(cast(_CoreStream, response.stream), request),
			extensions=response.extensions,
		)

	async def aclose(self) -> None:
		"""Close every pooled connection."""
		await self._pool.aclose()


def create_client(
	policy: NetworkPolicy,
	*,
	timeout: float,
	headers: Mapping[str, str] | None = None,
	resolver: Resolver | None = None,
) -> httpx.AsyncClient:
	"""An :class:`httpx.AsyncClient` that may only reach what ``policy`` allows.

	Redirects are not followed (the caller follows them, so it can re-check each target's
	scheme and strip credentials across origins), and proxy environment variables are ignored.

	Args:
		policy: Where connections may go.
		timeout: Seconds for each of connect, read, write and pool acquisition.
		headers: Default headers; ``User-Agent`` defaults to :data:`USER_AGENT`.
		resolver: Host name resolver; None uses :func:`system_resolver`.

	Returns:
		A client to use as ``async with create_client(...) as client``.
	"""
	return httpx.AsyncClient(
		transport=PolicyTransport(policy, resolver=resolver),
		timeout=httpx.Timeout(timeout),
		headers={"User-Agent": USER_AGENT, **(headers or {})},
		follow_redirects=False,
		trust_env=False,
	)
