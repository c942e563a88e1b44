"""``http.request``: call any HTTP API, inside the tenant's network policy.

Every connection goes through :class:`connectors.transport.PolicyTransport`, so a URL (or a
redirect) that leads to a private, loopback or link-local address is refused before any
byte is sent, unless the tenant's allowlist says otherwise. Redirects are followed here
rather than by httpx, so each hop's scheme is re-checked, credentials are dropped when the
origin changes, and no redirect body is read.

Outcome classification, which drives the node's retry policy:

- connection failures, timeouts, 408, 425, 429 and 5xx are retryable (``Retry-After`` is
  reported as ``details["retry_after_seconds"]``);
- other 4xx, refused addresses, oversized responses and bad redirects are permanent;
- with ``fail_on_status`` off, every status is a successful result.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, JsonValue, SecretStr, field_validator, model_validator

from connectors.errors import ActionError, ActionTimeout, PermanentError, RetryableError
from connectors.network import ALLOWED_SCHEMES
from connectors.sdk import ActionContext, Connector
from connectors.transport import USER_AGENT, PolicyTransport

__all__ = [
	"DEFAULT_MAX_RESPONSE_BYTES",
	"MAX_RESPONSE_BYTES",
	"BasicAuth",
	"BearerAuth",
	"HeaderAuth",
	"HttpRequestInput",
	"HttpResponseOutput",
	"NoAuth",
	"connector",
	"request",
]

DEFAULT_MAX_RESPONSE_BYTES = 10 * 1024 * 1024
"""Largest response body read by default (10 MiB)."""
MAX_RESPONSE_BYTES = 100 * 1024 * 1024
"""Largest ``max_response_bytes`` a call may ask for (100 MiB)."""

_EXCERPT_CHARS = 500
_RETRYABLE_STATUSES = frozenset({408, 425, 429})
_NO_IDEMPOTENCY_KEY = frozenset({"GET", "HEAD"})
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_DEFAULT_HEADERS = {"User-Agent": USER_AGENT, "Accept": "*/*", "Accept-Encoding": "gzip, deflate"}
_STATUS_HINTS = {
	401: "check the credentials of the step's connection or auth settings",
	403: "check that the credentials are allowed to do this",
	404: "check the URL",
	405: "check the method",
}

connector = Connector(
	"http",
	"HTTP",
	"Call any HTTP or REST API: any method, headers, query, JSON or text bodies, basic, bearer or "
	"header authentication, redirects, and retries on transient failures.",
	"1.0.0",
)

Method = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
Scalar = str | int | float | bool


def _check_header_name(name: str) -> str:
	if not _TOKEN.fullmatch(name):
		raise ValueError(f"{name!r} is not a valid header name (letters, digits and !#$%&'*+-.^_`|~ only)")
	return name


def _check_header_value(value: str) -> str:
	if not value.isascii() or any((ord(char) < 32 and char != "\t") or ord(char) == 127 for char in value):
		raise ValueError("header values must be printable ASCII (no line breaks or control characters)")
	return value


class NoAuth(BaseModel):
	"""Send no credentials, even when the step has a connection."""

	model_config = ConfigDict(extra="forbid", title="No authentication")

	type: Literal["none"] = Field(description="No authentication.")


class BasicAuth(BaseModel):
	"""HTTP Basic authentication."""

	model_config = ConfigDict(extra="forbid", title="Basic authentication")

	type: Literal["basic"] = Field(description="HTTP Basic authentication.")
	username: str = Field(description="User name.")
	password: SecretStr = Field(description="Password.")


class BearerAuth(BaseModel):
	"""A bearer token in the Authorization header."""

	model_config = ConfigDict(extra="forbid", title="Bearer token")

	type: Literal["bearer"] = Field(description="A bearer token (Authorization: Bearer <token>).")
	token: SecretStr = Field(min_length=1, description="The token.")

	@field_validator("token")
	@classmethod
	def _token_is_sendable(cls, token: SecretStr) -> SecretStr:
		_check_header_value(token.get_secret_value())
		return token


class HeaderAuth(BaseModel):
	"""A credential in a header of your choice (an API key)."""

	model_config = ConfigDict(extra="forbid", title="API key header")

	type: Literal["header"] = Field(description="A credential sent in a header of your choice.")
	name: str = Field(description="Header name, e.g. X-API-Key.")
	value: SecretStr = Field(description="Header value.")

	@field_validator("name")
	@classmethod
	def _name_is_token(cls, name: str) -> str:
		return _check_header_name(name)

	@field_validator("value")
	@classmethod
	def _value_is_sendable(cls, value: SecretStr) -> SecretStr:
		_check_header_value(value.get_secret_value())
		return value


Auth = Annotated[NoAuth | BasicAuth | BearerAuth | HeaderAuth, Field(discriminator="type")]


class HttpRequestInput(BaseModel):
	"""Parameters of ``http.request``."""

	model_config = ConfigDict(extra="forbid", title="HTTP request")

	method: Method = Field(default="GET", description="HTTP method (case-insensitive).")
	url: str = Field(
		min_length=1,
		description="Absolute http:// or https:// URL. Private and internal addresses are refused unless the tenant's network allowlist names them.",
		examples=["https://api.example.com/v1/orders"],
	)
	headers: dict[str, str] = Field(default_factory=dict, description="Request headers.")
	query: dict[str, Scalar | list[Scalar]] = Field(
		default_factory=dict,
		description="Query parameters, added to those in the URL (a name given here replaces the URL's); a list repeats the parameter.",
	)
	body: JsonValue = Field(
		default=None,
		description="A JSON request body (sent as application/json unless a Content-Type header is set); null sends no body.",
	)
	body_text: str | None = Field(
		default=None,
		description="A text request body (sent as text/plain; charset=utf-8 unless a Content-Type header is set). Use either body or body_text.",
	)
	auth: Auth | None = Field(
		default=None,
		description=(
			"Authentication. When omitted, the step's connection supplies it if it has one "
			"(keys 'token'; 'username' and 'password'; or 'header_name' and 'header_value')."
		),
	)
	timeout_seconds: float = Field(
		default=30.0,
		gt=0,
		le=300,
		description="Seconds the whole request may take, redirects and body included.",
	)
	follow_redirects: bool = Field(
		default=True, description="Follow redirects; every target is checked against the network policy."
	)
	max_redirects: int = Field(default=10, ge=0, le=30, description="Most redirects to follow.")
	fail_on_status: bool = Field(
		default=True,
		description="Fail the step on 4xx and 5xx responses; when false they are returned as results.",
	)
	max_response_bytes: int = Field(
		default=DEFAULT_MAX_RESPONSE_BYTES,
		ge=1,
		le=MAX_RESPONSE_BYTES,
		description="Largest response body to accept, after decompression (default 10 MiB, at most 100 MiB).",
	)

	@field_validator("method", mode="before")
	@classmethod
	def _upper_method(cls, method: Any) -> Any:
		return method.upper() if isinstance(method, str) else method

	@field_validator("url")
	@classmethod
	def _absolute_http_url(cls, url: str) -> str:
		try:
			parsed = httpx.URL(url)
		except httpx.InvalidURL as exc:
			raise ValueError(f"not a valid URL: {exc}") from None
		if parsed.scheme not in ALLOWED_SCHEMES:
			raise ValueError("only http:// and https:// URLs are allowed")
		if not parsed.host:
			raise ValueError("the URL names no host")
		return url

	@field_validator("headers")
	@classmethod
	def _sendable_headers(cls, headers: dict[str, str]) -> dict[str, str]:
		for name, value in headers.items():
			_check_header_name(name)
			try:
				_check_header_value(value)
			except ValueError as exc:
				raise ValueError(f"header {name!r}: {exc}") from None
		return headers

	@model_validator(mode="after")
	def _one_body(self) -> HttpRequestInput:
		if self.body is not None and self.body_text is not None:
			raise ValueError("give either body (JSON) or body_text, not both")
		return self


class HttpResponseOutput(BaseModel):
	"""Result of ``http.request``."""

	model_config = ConfigDict(extra="forbid", title="HTTP response")

	status: int = Field(description="HTTP status code.")
	headers: dict[str, str] = Field(
		description="Response headers, names in lower case; repeated headers are joined with ', '."
	)
	body: JsonValue = Field(
		description="The body: parsed JSON when the response is JSON, text otherwise, null when empty."
	)
	url: str = Field(description="The URL that answered, after redirects.")


@connector.action(
	name="request",
	title="HTTP request",
	description="Sends an HTTP request and returns the status, headers and body of the response.",
	input=HttpRequestInput,
	output=HttpResponseOutput,
)
async def request(ctx: ActionContext, params: HttpRequestInput) -> HttpResponseOutput:
	"""Send the request described by ``params`` through the tenant's network policy.

	Raises:
		RetryableError: Connection failure (``connection_error``), 408/425/429/5xx (``http_status``).
		ActionTimeout: ``timeout_seconds`` ran out (``http_timeout``).
		PermanentError: Other 4xx (``http_status``), a refused address (``address_not_allowed``)
			or scheme (``scheme_not_allowed``), an oversized body (``response_too_large``), a
			bad redirect (``invalid_redirect``, ``too_many_redirects``) or an undecodable
			body (``invalid_response``).
	"""
	headers, credential = _request_headers(ctx, params)
	content = _request_content(params, headers)
	url = httpx.URL(params.url)
	if params.query:
		url = url.copy_merge_params(params.query)
	shown = f"{params.method} {_redacted(url)}"
	first = httpx.Request(
		params.method,
		url,
		headers=headers,
		content=content,
		extensions={"timeout": httpx.Timeout(params.timeout_seconds).as_dict()},
	)
	# The transport is used directly rather than through httpx.AsyncClient: redirects are
	# followed here, and the client would log every URL, query string (often an API key)
	# included, at INFO level.
	transport = PolicyTransport(ctx.network)
	try:
		async with asyncio.timeout(params.timeout_seconds):
			try:
				return await _exchange(ctx, transport, first, params, credential)
			finally:
				await transport.aclose()
	except (TimeoutError, httpx.TimeoutException) as exc:
		phase = "" if isinstance(exc, TimeoutError) else f" ({type(exc).__name__})"
		raise ActionTimeout(
			f"{shown} did not complete within {params.timeout_seconds:g} s{phase}",
			code="http_timeout",
			details={"timeout_seconds": params.timeout_seconds},
		) from None
	except httpx.DecodingError as exc:
		raise PermanentError(
			f"{shown}: the response body could not be decoded: {exc}", code="invalid_response"
		) from None
	except httpx.TransportError as exc:
		raise RetryableError(
			f"{shown} failed: {exc or type(exc).__name__}",
			code="connection_error",
			details={"error": type(exc).__name__},
		) from None


def _connection_credential(connection: Mapping[str, str] | None) -> tuple[str, str] | None:
	if not connection:
		return None
	if connection.get("token"):
		return "Authorization", f"Bearer {connection['token']}"
	if "username" in connection and "password" in connection:
		return "Authorization", _basic(connection["username"], connection["password"])
	if connection.get("header_name") and "header_value" in connection:
		return connection["header_name"], connection["header_value"]
	return None


def _basic(username: str, password: str) -> str:
	return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def _auth_credential(auth: NoAuth | BasicAuth | BearerAuth | HeaderAuth) -> tuple[str, str] | None:
	match auth:
		case BasicAuth():
			return "Authorization", _basic(auth.username, auth.password.get_secret_value())
		case BearerAuth():
			return "Authorization", f"Bearer {auth.token.get_secret_value()}"
		case HeaderAuth():
			return auth.name, auth.value.get_secret_value()
		case _:  # NoAuth
			return None


def _request_headers(ctx: ActionContext, params: HttpRequestInput) -> tuple[dict[str, str], str | None]:
	"""The headers to send, and the (lower-case) name of the one carrying credentials."""
	given = {name.lower() for name in params.headers}
	headers = {name: value for name, value in _DEFAULT_HEADERS.items() if name.lower() not in given}
	headers.update(params.headers)
	if params.auth is not None:
		# Explicit auth is the purpose-built field: it replaces a header of the same name.
		credential = _auth_credential(params.auth)
		if credential is not None:
			headers = {
				name: value for name, value in headers.items() if name.lower() != credential[0].lower()
			}
	else:
		# A connection's credential is a default: a header the step sets itself wins.
		credential = _connection_credential(ctx.connection)
		if credential is not None and credential[0].lower() in {name.lower() for name in headers}:
			credential = None
	if credential is not None:
		headers[credential[0]] = credential[1]
	present = {name.lower() for name in headers}
	if params.method not in _NO_IDEMPOTENCY_KEY and "idempotency-key" not in present:
		headers["Idempotency-Key"] = ctx.idempotency_key
	return headers, None if credential is None else credential[0].lower()


def _request_content(params: HttpRequestInput, headers: dict[str, str]) -> bytes | None:
	if params.body_text is not None:
		content, media_type = params.body_text.encode(), "text/plain; charset=utf-8"
	elif params.body is not None:
		content = json.dumps(params.body, ensure_ascii=False, separators=(",", ":")).encode()
		media_type = "application/json"
	else:
		return None
	if "content-type" not in {name.lower() for name in headers}:
		headers["Content-Type"] = media_type
	return content


async def _exchange(
	ctx: ActionContext,
	transport: PolicyTransport,
	request: httpx.Request,
	params: HttpRequestInput,
	credential: str | None,
) -> HttpResponseOutput:
	for _ in range(params.max_redirects + 1):
		response = await transport.handle_async_request(request)
		response.request = request
		try:
			if not (params.follow_redirects and response.has_redirect_location):
				content = await _read_body(response, params.max_response_bytes)
				return _result(ctx, request, response, content, params.fail_on_status)
			_log_redirect(ctx, request, response)
			request = _redirect_request(request, response, credential)
		finally:
			await response.aclose()
	raise PermanentError(
		f"{request.method} {_redacted(request.url)}: stopped after {params.max_redirects} redirects",
		code="too_many_redirects",
		details={"max_redirects": params.max_redirects},
	)


def _same_origin(one: httpx.URL, other: httpx.URL) -> bool:
	return (one.scheme, one.host, one.port) == (other.scheme, other.host, other.port)


def _redirect_request(
	request: httpx.Request, response: httpx.Response, credential: str | None
) -> httpx.Request:
	location = response.headers["location"]
	try:
		url = request.url.join(location)
	except httpx.InvalidURL as exc:
		raise PermanentError(
			f"{_redacted(request.url)} redirected to an invalid URL {location!r}: {exc}",
			code="invalid_redirect",
		) from None
	if url.scheme not in ALLOWED_SCHEMES:
		raise PermanentError(
			f"{_redacted(request.url)} redirected to a {url.scheme or 'scheme-less'} URL; only http:// "
			"and https:// redirects are followed",
			code="scheme_not_allowed",
			details={"scheme": url.scheme},
		)
	method = request.method
	if (response.status_code == 303 and method != "HEAD") or (
		response.status_code in (301, 302) and method == "POST"
	):
		method = "GET"
	headers = httpx.Headers(request.headers)
	# Host and Content-Length are recomputed for the new request.
	for name in ("host", "content-length", "transfer-encoding"):
		headers.pop(name, None)
	if not _same_origin(url, request.url):
		# Credentials and cookies belong to the origin they were meant for.
		for name in {"authorization", "cookie", credential or "authorization"}:
			headers.pop(name, None)
	content: bytes | None = request.content or None
	if method != request.method:
		content = None
		for name in ("content-type", "idempotency-key"):
			headers.pop(name, None)
	return httpx.Request(method, url, headers=headers, content=content, extensions=request.extensions)


async def _read_body(response: httpx.Response, limit: int) -> bytes:
	declared = response.headers.get("content-length", "")
	# A HEAD response declares the length of a body it does not send.
	if response.request.method != "HEAD" and declared.isdigit() and int(declared) > limit:
		raise _too_large(response, limit)
	chunks: list[bytes] = []
	size = 0
	# Counted after decompression, so a small compressed body cannot expand past the limit.
	async for chunk in response.aiter_bytes():
		size += len(chunk)
		if size > limit:
			raise _too_large(response, limit)
		chunks.append(chunk)
	return b"".join(chunks)


def _too_large(response: httpx.Response, limit: int) -> PermanentError:
	return PermanentError(
		f"{response.request.method} {_redacted(response.request.url)}: the response body is larger than "
		f"{_format_bytes(limit)} (max_response_bytes); raise max_response_bytes (at most "
		f"{_format_bytes(MAX_RESPONSE_BYTES)}) or ask the server for less",
		code="response_too_large",
		details={"limit_bytes": limit, "status": response.status_code},
	)


def _format_bytes(size: int) -> str:
	for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
		if size >= scale and size % scale == 0:
			return f"{size // scale} {unit}"
	return f"{size} bytes"


def _decode_text(response: httpx.Response, content: bytes) -> str:
	try:
		return content.decode(response.charset_encoding or "utf-8", errors="replace")
	except LookupError:  # an unknown charset name
		return content.decode("utf-8", errors="replace")


def _decode_body(response: httpx.Response, content: bytes) -> JsonValue:
	if not content:
		return None
	text = _decode_text(response, content)
	media_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
	if media_type == "application/json" or media_type.endswith("+json"):
		try:
			return json.loads(text)
		except ValueError:
			pass  # mislabelled: hand over the text rather than fail
	return text


def _result(
	ctx: ActionContext, request: httpx.Request, response: httpx.Response, content: bytes, fail_on_status: bool
) -> HttpResponseOutput:
	_log_response(ctx, request, response, len(content))
	if fail_on_status and response.status_code >= 400:
		raise _status_error(request, response, content)
	return HttpResponseOutput(
		status=response.status_code,
		headers={name.lower(): value for name, value in response.headers.items()},
		body=_decode_body(response, content),
		url=str(response.url),
	)


def _status_error(request: httpx.Request, response: httpx.Response, content: bytes) -> ActionError:
	status = response.status_code
	message = f"{request.method} {_redacted(request.url)} returned {status} {response.reason_phrase}".rstrip()
	details: dict[str, Any] = {
		"status": status,
		"reason": response.reason_phrase,
		"body_excerpt": _decode_text(response, content[: _EXCERPT_CHARS * 4])[:_EXCERPT_CHARS],
	}
	if status in _RETRYABLE_STATUSES or status >= 500:
		retry_after = _retry_after_seconds(response.headers.get("retry-after"))
		if retry_after is not None:
			details["retry_after_seconds"] = retry_after
			message += f"; the server asks to retry after {retry_after:g} s"
		return RetryableError(message, code="http_status", details=details)
	hint = _STATUS_HINTS.get(status)
	return PermanentError(f"{message}: {hint}" if hint else message, code="http_status", details=details)


def _retry_after_seconds(value: str | None) -> float | None:
	"""``Retry-After`` as seconds from now: delta-seconds or an HTTP date; None when absent or invalid."""
	if value is None:
		return None
	value = value.strip()
	if value.isdigit():
		return float(value)
	try:
		when = email.utils.parsedate_to_datetime(value)
	except (TypeError, ValueError):
		return None
	if when.tzinfo is None:  # "-0000" means UTC with no claim about the local zone
		when = when.replace(tzinfo=UTC)
	return round(max(0.0, (when - datetime.now(UTC)).total_seconds()), 3)


def _redacted(url: httpx.URL) -> str:
	"""The URL without credentials or query string, which may hold secrets, for messages and logs."""
	host = f"[{url.host}]" if ":" in url.host else url.host
	port = f":{url.port}" if url.port is not None else ""
	return f"{url.scheme}://{host}{port}{url.path}"


def _log_redirect(ctx: ActionContext, request: httpx.Request, response: httpx.Response) -> None:
	ctx.logger.debug(
		"http %s %s redirected (%s)", request.method, _redacted(request.url), response.status_code
	)


def _log_response(ctx: ActionContext, request: httpx.Request, response: httpx.Response, size: int) -> None:
	ctx.logger.info(
		"http %s %s -> %s (%s bytes)", request.method, _redacted(request.url), response.status_code, size
	)
