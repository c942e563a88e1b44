"""Fixtures for the connector tests: real HTTP servers on 127.0.0.1 and an outbound-traffic guard.

Every test in this directory runs under :func:`no_outbound_traffic`: a TCP connection to
anything but a loopback address fails the test, so the SSRF tests prove that refused
addresses are refused before a packet is sent, not after.
"""

from __future__ import annotations

import gzip
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from connectors.network import NetworkPolicy
from connectors.sdk import ActionContext

LOOPBACK_POLICY = NetworkPolicy(allowlist=("127.0.0.1",))
"""The policy tests use to reach their own servers: loopback IPv4 allowed, nothing else."""


@dataclass
class Recorded:
	"""One request a test server received."""

	method: str
	path: str
	query: dict[str, list[str]]
	headers: dict[str, str]
	body: bytes


@dataclass
class ServerInfo:
	"""A running test server."""

	host: str
	port: int
	scheme: str = "http"
	requests: list[Recorded] = field(default_factory=list)
	sni: list[str | None] = field(default_factory=list)

	@property
	def base_url(self) -> str:
		return f"{self.scheme}://{self.host}:{self.port}"

	def url(self, path: str) -> str:
		return self.base_url + path


class _Handler(BaseHTTPRequestHandler):
	server: _Server

	def log_message(self, format: str, *args: Any) -> None:
		pass  # keep test output clean

	def do_GET(self) -> None:
		self._handle()

	do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = do_GET

	def _handle(self) -> None:
		parts = urlsplit(self.path)
		query = parse_qs(parts.query, keep_blank_values=True)
		length = int(self.headers.get("content-length") or 0)
		body = self.rfile.read(length) if length else b""
		record = Recorded(
			method=self.command,
			path=parts.path,
			query=query,
			headers={name.lower(): value for name, value in self.headers.items()},
			body=body,
		)
		self.server.info.requests.append(record)
		route = getattr(self, "_route_" + parts.path.strip("/").split("/")[0].replace("-", "_"), None)
		if route is None:
			self._send(404, b"no such route", "text/plain")
			return
		route(parts.path, {key: values[-1] for key, values in query.items()}, record)

	def _send(
		self, status: int, body: bytes, content_type: str | None, headers: dict[str, str] | None = None
	) -> None:
		self.send_response(status)
		if content_type is not None:
			self.send_header("Content-Type", content_type)
		for name, value in (headers or {}).items():
			self.send_header(name, value)
		self.send_header("Content-Length", str(len(body)))
		self.end_headers()
		if self.command != "HEAD":
			self.wfile.write(body)

	def _route_echo(self, path: str, query: dict[str, str], record: Recorded) -> None:
		payload = {
			"method": record.method,
			"path": record.path,
			"query": record.query,
			"headers": record.headers,
			"body": record.body.decode("utf-8", "replace"),
		}
		self._send(200, json.dumps(payload).encode(), "application/json", {"X-Served-By": "echo"})

	def _route_text(self, path: str, query: dict[str, str], record: Recorded) -> None:
		self._send(200, "hello, wörld".encode(), "text/plain; charset=utf-8")

	def _route_content(self, path: str, query: dict[str, str], record: Recorded) -> None:
		self._send(200, query.get("body", "").encode(), query.get("type"))

	def _route_status(self, path: str, query: dict[str, str], record: Recorded) -> None:
		status = int(path.rsplit("/", 1)[1])
		headers = {"Retry-After": query["retry_after"]} if "retry_after" in query else {}
		self._send(status, f"status {status} body".encode(), "text/plain", headers)

	def _route_redirect(self, path: str, query: dict[str, str], record: Recorded) -> None:
		self._send(int(query.get("status", "302")), b"", None, {"Location": query["to"]})

	def _route_loop(self, path: str, query: dict[str, str], record: Recorded) -> None:
		self._send(302, b"", None, {"Location": "/loop"})

	def _route_slow(self, path: str, query: dict[str, str], record: Recorded) -> None:
		time.sleep(float(query["seconds"]))
		self._send(200, b"late", "text/plain")

	def _route_bytes(self, path: str, query: dict[str, str], record: Recorded) -> None:
		size = int(query["n"])
		self.send_response(200)
		self.send_header("Content-Type", "application/octet-stream")
		if query.get("length", "1") == "1":
			self.send_header("Content-Length", str(size))
		self.end_headers()
		if self.command == "HEAD":
			return
		for _ in range(size // 1024):
			self.wfile.write(b"x" * 1024)
		self.wfile.write(b"x" * (size % 1024))

	def _route_gzip(self, path: str, query: dict[str, str], record: Recorded) -> None:
		body = gzip.compress(b"y" * int(query["n"])) if "n" in query else b"this is not gzip"
		self._send(200, body, "text/plain", {"Content-Encoding": "gzip"})

	def _route_truncated(self, path: str, query: dict[str, str], record: Recorded) -> None:
		self.send_response(200)
		self.send_header("Content-Length", "100")
		self.end_headers()
		self.wfile.write(b"only ten b")
		self.wfile.flush()
		self.close_connection = True


class _Server(ThreadingHTTPServer):
	daemon_threads = True
	info: ServerInfo

	def handle_error(self, request: Any, client_address: Any) -> None:
		pass  # a client that gave up (timeout tests) is not a server error


def _start(server: _Server, info: ServerInfo) -> Iterator[ServerInfo]:
	server.info = info
	thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
	thread.start()
	try:
		yield info
	finally:
		server.shutdown()
		server.server_close()
		thread.join(timeout=5)


@pytest.fixture(scope="session")
def _http_server() -> Iterator[ServerInfo]:
	server = _Server(("127.0.0.1", 0), _Handler)
	yield from _start(server, ServerInfo("127.0.0.1", server.server_address[1]))


@pytest.fixture(scope="session")
def _other_http_server() -> Iterator[ServerInfo]:
	server = _Server(("127.0.0.1", 0), _Handler)
	yield from _start(server, ServerInfo("127.0.0.1", server.server_address[1]))


@pytest.fixture
def http_server(_http_server: ServerInfo) -> ServerInfo:
	"""A real HTTP server on 127.0.0.1; ``requests`` holds what it received in this test."""
	_http_server.requests.clear()
	return _http_server


@pytest.fixture
def other_http_server(_other_http_server: ServerInfo) -> ServerInfo:
	"""A second server: a different origin (port) for cross-origin redirects."""
	_other_http_server.requests.clear()
	return _other_http_server


@pytest.fixture
def tls_server(tmp_path: Any) -> Iterator[tuple[ServerInfo, ssl.SSLContext]]:
	"""An HTTPS server on 127.0.0.1 whose certificate names only ``api.test``, and a client
	TLS context that trusts it. ``sni`` records the server name each client asked for."""
	pytest.importorskip("cryptography")
	cert_file, key_file = _self_signed(tmp_path, "api.test")
	server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
	server_context.load_cert_chain(cert_file, key_file)
	server = _Server(("127.0.0.1", 0), _Handler)
	info = ServerInfo("api.test", server.server_address[1], scheme="https")

	def remember(_socket: ssl.SSLObject | ssl.SSLSocket, name: str | None, _context: ssl.SSLContext) -> None:
		info.sni.append(name)

	server_context.sni_callback = remember
	server.socket = server_context.wrap_socket(server.socket, server_side=True)
	client_context = ssl.create_default_context(cafile=str(cert_file))
	for running in _start(server, info):
		yield running, client_context


def _self_signed(directory: Any, name: str) -> tuple[Any, Any]:
	import datetime

	from cryptography import x509
	from cryptography.hazmat.primitives import hashes, serialization
	from cryptography.hazmat.primitives.asymmetric import ec
	from cryptography.x509.oid import NameOID

	key = ec.generate_private_key(ec.SECP256R1())
	subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
	now = datetime.datetime.now(datetime.UTC)
	certificate = (
		x509.CertificateBuilder()
		.subject_name(subject)
		.issuer_name(subject)
		.public_key(key.public_key())
		.serial_number(x509.random_serial_number())
		.not_valid_before(now - datetime.timedelta(minutes=5))
		.not_valid_after(now + datetime.timedelta(days=1))
		.add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
		.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
		.sign(key, hashes.SHA256())
	)
	cert_file = directory / "cert.pem"
	key_file = directory / "key.pem"
	cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
	key_file.write_bytes(
		key.private_bytes(
			serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
		)
	)
	return cert_file, key_file


@pytest.fixture(autouse=True)
def no_outbound_traffic(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
	"""Fail the test if anything opens a TCP connection to a non-loopback address.

	Yields the list of every TCP destination connected to, for tests that check it.
	"""
	attempts: list[Any] = []
	offending: list[Any] = []
	real_connect = socket.socket.connect
	real_connect_ex = socket.socket.connect_ex

	def check(sock: socket.socket, address: Any) -> None:
		if sock.family in (socket.AF_INET, socket.AF_INET6):
			attempts.append(address)
			if not ipaddress.ip_address(str(address[0]).split("%")[0]).is_loopback:
				offending.append(address)
				raise AssertionError(f"test tried to connect to a non-loopback address {address!r}")

	def connect(sock: socket.socket, address: Any) -> None:
		check(sock, address)
		real_connect(sock, address)

	def connect_ex(sock: socket.socket, address: Any) -> int:
		check(sock, address)
		return real_connect_ex(sock, address)

	monkeypatch.setattr(socket.socket, "connect", connect)
	monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
	yield attempts
	assert not offending, f"connections to non-loopback addresses were attempted: {offending}"


@pytest.fixture
def make_ctx() -> Callable[..., ActionContext]:
	"""``make_ctx(**overrides)``: an ActionContext that may reach 127.0.0.1 (and nothing else private)."""

	def make(**overrides: Any) -> ActionContext:
		values: dict[str, Any] = {
			"idempotency_key": "idem-key-1",
			"run_id": "run-1",
			"step_id": "step-1",
			"tenant_id": "tenant-1",
			"network": LOOPBACK_POLICY,
		} | overrides
		return ActionContext.create(**values)

	return make
