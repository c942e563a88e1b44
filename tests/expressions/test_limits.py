"""The process-wide limits and how changing them takes effect."""

from __future__ import annotations

from typing import Any

import pytest

from workflows.expressions import Limits, configure, current_limits
from workflows.expressions.errors import format_bytes, format_seconds
from workflows.expressions.sandbox import get_pool


def test_defaults() -> None:
	defaults = Limits()

	assert defaults.timeout == 1.0
	assert defaults.max_output_bytes == 1 << 20
	assert defaults.max_source_length == 4096
	assert defaults.memory_bytes == 1 << 30
	assert 2 <= defaults.pool_size <= 4


def test_limits_must_be_positive() -> None:
	with pytest.raises(ValueError, match="timeout must be positive"):
		Limits(timeout=0)
	with pytest.raises(ValueError, match="pool_size must be at least 1"):
		Limits(pool_size=0)


def test_configure_changes_only_what_it_is_given(limits: Any) -> None:
	before = current_limits()

	after = limits(timeout=2.5, max_output_bytes=1000)

	assert after == current_limits()
	assert (after.timeout, after.max_output_bytes) == (2.5, 1000)
	assert after.memory_bytes == before.memory_bytes


def test_configuring_the_same_limits_keeps_the_sandboxes(limits: Any) -> None:
	pool = get_pool()

	limits(timeout=current_limits().timeout)
	limits(current_limits())

	assert get_pool() is pool


def test_configure_with_limits_restores_defaults(limits: Any) -> None:
	limits(timeout=3.0)

	assert configure(Limits()).timeout == 1.0


@pytest.mark.parametrize(
	("size", "text"), [(1 << 30, "1 GiB"), (3 << 20, "3 MiB"), (512 << 10, "512 KiB"), (1000, "1000 bytes")]
)
def test_byte_limits_read_naturally(size: int, text: str) -> None:
	assert format_bytes(size) == text


def test_second_limits_keep_a_decimal() -> None:
	assert format_seconds(1) == "1.0 s"
	assert format_seconds(0.25) == "0.25 s"
