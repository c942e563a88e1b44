"""Settings come from the environment, are validated at start, and bad values stop the process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.env import BASE_DIR, ConfigError, load_env
from config.logging import build_logging


def test_nothing_set_means_the_embedded_default(tmp_path: Path) -> None:
	env = load_env({"DATA_DIR": str(tmp_path)})

	assert env.embedded
	assert env.run_embedded_worker
	assert not env.json_logs
	assert env.ALLOWED_HOSTS == ["localhost", "127.0.0.1", "[::1]"]


def test_production_shape_when_database_and_redis_are_set() -> None:
	env = load_env(
		{
			"DATABASE_URL": "postgres://app:pw@db.internal:5432/apg",
			"REDIS_URL": "redis://cache.internal:6379/0",
			"SECRET_KEY": "k" * 64,
			"ALLOWED_HOSTS": "flows.example.com, api.example.com",
		}
	)

	assert not env.embedded
	assert not env.run_embedded_worker
	assert env.json_logs
	assert env.ALLOWED_HOSTS == ["flows.example.com", "api.example.com"]
	assert env.secret_key() == "k" * 64


@pytest.mark.parametrize(
	("name", "value", "expected"),
	[
		("DATABASE_URL", "mysql://root@localhost/db", "postgres://USER:PASSWORD@HOST:PORT/NAME"),
		("DATABASE_URL", "postgres://user@/", "names no host"),
		("REDIS_URL", "http://localhost:6379", "unsupported scheme 'http'"),
		("REDIS_URL", "redis://localhost:notaport/0", "port is not a number"),
		("DEBUG", "maybe", "true or false"),
		("EMBEDDED_WORKER_CONCURRENCY", "0", "from 1 to 64"),
		("LOG_LEVEL", "LOUD", "one of DEBUG, INFO"),
		("TIME_ZONE", "Mars/Olympus", "unknown time zone"),
		("SECRET_KEY", "short", "at least 50 characters"),
	],
)
def test_a_bad_value_names_the_variable_and_what_it_expects(name: str, value: str, expected: str) -> None:
	with pytest.raises(ConfigError) as caught:
		load_env({name: value})

	message = str(caught.value)
	assert message.startswith(f"{name}: expected")
	assert expected in message


def test_secrets_are_not_echoed_in_errors() -> None:
	with pytest.raises(ConfigError) as caught:
		load_env({"DATABASE_URL": "mysql://root:hunter2@localhost/db"})

	assert "hunter2" not in str(caught.value)


def test_several_bad_values_are_reported_together() -> None:
	with pytest.raises(ConfigError) as caught:
		load_env({"DEBUG": "maybe", "LOG_FORMAT": "xml"})

	assert "DEBUG:" in str(caught.value)
	assert "LOG_FORMAT:" in str(caught.value)


def test_embedded_secret_key_is_generated_once_and_kept(tmp_path: Path) -> None:
	env = load_env({"DATA_DIR": str(tmp_path)})

	first = env.secret_key()
	second = load_env({"DATA_DIR": str(tmp_path)}).secret_key()

	assert first == second
	assert len(first) >= 50
	assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_production_requires_an_explicit_secret_key() -> None:
	env = load_env({"DATABASE_URL": "postgres://u:p@db:5432/apg"})

	with pytest.raises(ConfigError, match="SECRET_KEY: required when DATABASE_URL is set"):
		env.secret_key()


def test_unwritable_data_dir_is_reported(tmp_path: Path) -> None:
	blocker = tmp_path / "file"
	blocker.write_text("not a directory")
	env = load_env({"DATA_DIR": str(blocker / "sub")})

	with pytest.raises(ConfigError, match="DATA_DIR: cannot keep the generated secret key"):
		env.secret_key()


def test_explicit_log_format_wins() -> None:
	assert load_env({"LOG_FORMAT": "json"}).json_logs
	assert not load_env({"LOG_FORMAT": "text", "DATABASE_URL": "postgres://u:p@db/apg"}).json_logs
	assert load_env({"EMBEDDED_WORKER": "false"}).run_embedded_worker is False


def test_logging_config_has_json_and_text_shapes() -> None:
	json_config = build_logging(level="INFO", json_lines=True)
	text_config = build_logging(level="DEBUG", json_lines=False)

	assert json_config["formatters"]["default"]["()"] == "pythonjsonlogger.json.JsonFormatter"
	assert "request_id" in text_config["formatters"]["default"]["format"]
	assert text_config["root"]["level"] == "DEBUG"


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
	clean = {
		k: v
		for k, v in os.environ.items()
		if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}
	}
	return subprocess.run(
		[sys.executable, "manage.py", *args],
		cwd=BASE_DIR,
		env=clean | env,
		capture_output=True,
		text=True,
		timeout=60,
		check=False,
	)


def test_a_bad_setting_stops_the_start_with_a_message_naming_it() -> None:
	result = _manage("check", DATABASE_URL="mysql://root@localhost/db")

	assert result.returncode == 2
	assert "Configuration error: DATABASE_URL: expected postgres://" in result.stderr
	assert "Traceback" not in result.stderr


def test_manage_check_passes_on_the_embedded_default(tmp_path: Path) -> None:
	result = _manage("check", DATA_DIR=str(tmp_path))

	assert result.returncode == 0, result.stderr
	assert "no issues" in result.stdout
