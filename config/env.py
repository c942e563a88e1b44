"""Settings read from the environment, validated once at start.

Every knob an operator can turn is a field of :class:`EnvSettings`. A bad value stops the
process with :class:`ConfigError`, whose message names the variable, what it expects and
what it got (secrets excepted), so nobody has to read a traceback to fix a deployment.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

__all__ = ["BASE_DIR", "ConfigError", "EnvSettings", "load_env", "parse_rate"]

BASE_DIR = Path(__file__).resolve().parent.parent

_SECRET_FIELDS = frozenset({"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "SECRETS_ENCRYPTION_KEY"})

# What each variable expects, in words an operator can act on. Pydantic's own message is
# appended, so these only need to say the expected shape.
_EXPECTS: dict[str, str] = {
	"DEBUG": "true or false",
	"SECRET_KEY": "a random string of at least 50 characters (python -c 'import secrets; print(secrets.token_urlsafe(64))')",
	"ALLOWED_HOSTS": "a comma-separated list of host names, e.g. 'flows.example.com,localhost'",
	"CSRF_TRUSTED_ORIGINS": "a comma-separated list of origins with scheme, e.g. 'https://flows.example.com'",
	"DATABASE_URL": "postgres://USER:PASSWORD@HOST:PORT/NAME or sqlite:///PATH",
	"DATABASE_POOL_MIN_SIZE": "a whole number >= 0",
	"DATABASE_POOL_MAX_SIZE": "a whole number >= 0 (0 turns pooling off)",
	"REDIS_URL": "redis://[:PASSWORD@]HOST:PORT/DB or rediss://... for TLS",
	"DATA_DIR": "a directory path the process may write to",
	"LOG_LEVEL": "one of DEBUG, INFO, WARNING, ERROR, CRITICAL",
	"LOG_FORMAT": "one of auto, json, text",
	"HTTPS": "true or false (true when the site is served over TLS)",
	"TRUST_PROXY_HEADERS": "true or false (true only behind a proxy that sets X-Forwarded-For)",
	"EMBEDDED_WORKER": "true or false",
	"EMBEDDED_WORKER_CONCURRENCY": "a whole number from 1 to 64",
	"LOGIN_MAX_FAILURES": "a whole number from 1 to 1000",
	"LOGIN_LOCKOUT_SECONDS": "a whole number of seconds from 1 to 86400",
	"API_TOKEN_DEFAULT_TTL_DAYS": "a whole number of days from 1 to 3650",
	"TIME_ZONE": "an IANA time zone name such as UTC or Europe/Paris",
	"TENANT_CONCURRENCY_LIMIT": "a whole number of runs >= 1, or unset for no limit",
	"STEP_LEASE_SECONDS": "a whole number of seconds from 5 to 3600",
	"STEP_REDISPATCH_SECONDS": "a whole number of seconds from 1 to 86400",
	"EVENT_RETENTION_SECONDS": "a whole number of seconds from 0 to 2592000",
	"SECRETS_ENCRYPTION_KEY": "one or more Fernet keys, comma-separated (python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')",
	"CONNECTOR_ALLOW_PRIVATE_NETWORKS": "true or false (true lets connectors call private and loopback addresses)",
	"API_RATE_PER_TOKEN": "requests per period, e.g. '1200/minute' (periods: second, minute, hour, day), or 'off'",
	"API_RATE_PER_TENANT": "requests per period, e.g. '6000/minute' (periods: second, minute, hour, day), or 'off'",
	"API_MAX_BODY_BYTES": "a whole number of bytes from 1024 to 1073741824, e.g. 10485760 for 10 MiB",
	"API_BULK_MAX_ITEMS": "a whole number from 1 to 100000",
}

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(seconds?|secs?|s|minutes?|mins?|m|hours?|h|days?|d)\s*$", re.IGNORECASE)
_PERIOD_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(value: str) -> tuple[int, int] | None:
	"""``'1200/minute'`` as ``(1200, 60)``: requests allowed per window of seconds; None for ``off``.

	Raises:
		ValueError: the value is neither ``N/period`` (N >= 1) nor ``off``.
	"""
	if value.strip().lower() == "off":
		return None
	match = _RATE.match(value)
	if match is None or int(match.group(1)) < 1:
		raise ValueError(f"{value!r} is not N/period with N >= 1")
	return int(match.group(1)), _PERIOD_SECONDS[match.group(2)[0].lower()]


class ConfigError(ImproperlyConfigured):
	"""A setting is missing or malformed; the message says which and how to fix it."""


def _split_csv(value: object) -> object:
	if isinstance(value, str):
		return [part.strip() for part in value.split(",") if part.strip()]
	return value


class EnvSettings(BaseSettings):
	"""Every environment variable the platform reads.

	Nothing set means the embedded default: SQLite, in-memory channel layer and broker,
	and a Celery worker inside the web process. Setting ``DATABASE_URL`` and ``REDIS_URL``
	switches to the production shape (PostgreSQL, Redis, separate processes).
	"""

	model_config = SettingsConfigDict(case_sensitive=True, extra="ignore")

	DEBUG: bool = False
	SECRET_KEY: str | None = None
	ALLOWED_HOSTS: Annotated[list[str], NoDecode] = Field(
		default_factory=lambda: ["localhost", "127.0.0.1", "[::1]"]
	)
	CSRF_TRUSTED_ORIGINS: Annotated[list[str], NoDecode] = Field(default_factory=list)
	DATABASE_URL: str | None = None
	DATABASE_POOL_MIN_SIZE: int = Field(default=2, ge=0)
	DATABASE_POOL_MAX_SIZE: int = Field(default=20, ge=0)
	REDIS_URL: str | None = None
	DATA_DIR: Path = BASE_DIR / "var"
	LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
	LOG_FORMAT: Literal["auto", "json", "text"] = "auto"
	HTTPS: bool = False
	TRUST_PROXY_HEADERS: bool = False
	EMBEDDED_WORKER: bool | None = None
	EMBEDDED_WORKER_CONCURRENCY: int = Field(default=4, ge=1, le=64)
	LOGIN_MAX_FAILURES: int = Field(default=5, ge=1, le=1000)
	LOGIN_LOCKOUT_SECONDS: int = Field(default=900, ge=1, le=86400)
	API_TOKEN_DEFAULT_TTL_DAYS: int = Field(default=90, ge=1, le=3650)
	TIME_ZONE: str = "UTC"
	TENANT_CONCURRENCY_LIMIT: int | None = Field(default=None, ge=1, le=1_000_000)
	STEP_LEASE_SECONDS: int = Field(default=60, ge=5, le=3600)
	STEP_REDISPATCH_SECONDS: int | None = Field(default=None, ge=1, le=86_400)
	EVENT_RETENTION_SECONDS: int = Field(default=86_400, ge=0, le=30 * 86_400)
	CONNECTOR_ALLOW_PRIVATE_NETWORKS: bool = False
	SECRETS_ENCRYPTION_KEY: str | None = None
	# API limits: generous defaults that normal use never reaches (see docs/installation_guide.md).
	API_RATE_PER_TOKEN: str = "1200/minute"  # noqa: S105 - a rate, not a secret
	API_RATE_PER_TENANT: str = "6000/minute"
	API_MAX_BODY_BYTES: int = Field(default=10 << 20, ge=1024, le=1 << 30)
	API_BULK_MAX_ITEMS: int = Field(default=1000, ge=1, le=100_000)

	_split_hosts = field_validator("ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", mode="before")(_split_csv)

	@field_validator("API_RATE_PER_TOKEN", "API_RATE_PER_TENANT")
	@classmethod
	def _check_rate(cls, value: str) -> str:
		parse_rate(value)
		return value.strip()

	@field_validator("DATABASE_URL")
	@classmethod
	def _check_database_url(cls, value: str | None) -> str | None:
		if value is None:
			return None
		scheme = urlsplit(value).scheme
		if scheme in {"postgres", "postgresql", "pgsql"}:
			if not urlsplit(value).hostname and "host=" not in value:
				raise ValueError("the URL names no host")
			if not urlsplit(value).path.strip("/"):
				raise ValueError("the URL names no database")
			return value
		if scheme == "sqlite":
			return value
		raise ValueError(f"unsupported scheme {scheme!r}")

	@field_validator("REDIS_URL")
	@classmethod
	def _check_redis_url(cls, value: str | None) -> str | None:
		if value is None:
			return None
		parts = urlsplit(value)
		if parts.scheme not in {"redis", "rediss"}:
			raise ValueError(f"unsupported scheme {parts.scheme!r}")
		if not parts.hostname:
			raise ValueError("the URL names no host")
		try:
			parts.port  # noqa: B018 - raises ValueError on a malformed port
		except ValueError as exc:
			raise ValueError("the port is not a number from 0 to 65535") from exc
		return value

	@field_validator("SECRET_KEY")
	@classmethod
	def _check_secret_key(cls, value: str | None) -> str | None:
		if value is not None and len(value) < 50:
			raise ValueError(f"it is {len(value)} characters long")
		return value

	@field_validator("TIME_ZONE")
	@classmethod
	def _check_time_zone(cls, value: str) -> str:
		from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

		try:
			ZoneInfo(value)
		except (ZoneInfoNotFoundError, ValueError) as exc:
			raise ValueError("unknown time zone") from exc
		return value

	@property
	def embedded(self) -> bool:
		"""True when no Redis is configured: broker, channel layer and cache live in-process."""
		return self.REDIS_URL is None

	@property
	def run_embedded_worker(self) -> bool:
		"""Whether the web process also runs a Celery worker (the default when embedded)."""
		return self.embedded if self.EMBEDDED_WORKER is None else self.EMBEDDED_WORKER

	@property
	def json_logs(self) -> bool:
		"""JSON lines in production, readable lines in development."""
		if self.LOG_FORMAT == "auto":
			return not self.DEBUG and self.DATABASE_URL is not None
		return self.LOG_FORMAT == "json"

	def secret_key(self) -> str:
		"""The configured key, or one generated once and kept in DATA_DIR for embedded use.

		Production (a DATABASE_URL set) must set SECRET_KEY explicitly: a key on one host's
		disk would sign sessions the other web hosts cannot read.
		"""
		if self.SECRET_KEY is not None:
			return self.SECRET_KEY
		if self.DATABASE_URL is not None and not self.DEBUG:
			raise ConfigError(
				f"SECRET_KEY: required when DATABASE_URL is set; expected {_EXPECTS['SECRET_KEY']}."
			)
		path = self.DATA_DIR / "secret_key"
		try:
			if path.exists():
				return path.read_text().strip()
			path.parent.mkdir(parents=True, exist_ok=True)
			key = secrets.token_urlsafe(64)
			path.write_text(key)
			path.chmod(0o600)
		except OSError as exc:
			raise ConfigError(f"DATA_DIR: cannot keep the generated secret key at {path}: {exc}") from exc
		return key


def _describe(error: ValidationError) -> str:
	lines = []
	for item in error.errors():
		name = str(item["loc"][0]) if item["loc"] else "?"
		expects = _EXPECTS.get(name, "a valid value")
		message = item["msg"].removeprefix("Value error, ")
		got = "" if name in _SECRET_FIELDS else f"; got {item.get('input')!r}"
		lines.append(f"{name}: expected {expects} ({message}{got})")
	return "; ".join(lines)


def load_env(environ: dict[str, str] | None = None) -> EnvSettings:
	"""Read and validate the environment (or ``environ`` when given, for tests).

	Raises:
		ConfigError: a variable is malformed; the message names each bad variable.
	"""
	try:
		if environ is None:
			return EnvSettings()
		given: dict[str, Any] = {k: v for k, v in environ.items() if k in EnvSettings.model_fields}
		return _GivenEnv(**given)
	except ValidationError as exc:
		raise ConfigError(_describe(exc)) from None


class _GivenEnv(EnvSettings):
	"""Reads only the values passed in, never the process environment (for tests)."""

	@classmethod
	def settings_customise_sources(
		cls,
		settings_cls: type[BaseSettings],
		init_settings: PydanticBaseSettingsSource,
		env_settings: PydanticBaseSettingsSource,
		dotenv_settings: PydanticBaseSettingsSource,
		file_secret_settings: PydanticBaseSettingsSource,
	) -> tuple[PydanticBaseSettingsSource, ...]:
		return (init_settings,)
