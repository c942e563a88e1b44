"""Throttling of failed sign-ins, shared by the login page and the token endpoint."""

from __future__ import annotations

import hashlib
import logging

from django.conf import settings
from django.core.cache import cache

__all__ = ["LoginThrottle"]


class LoginThrottle:
	"""Count failed sign-ins per (username, client) and per client; lock out past the limit.

	The per-client counter, at four times the per-account limit, stops one address from
	spraying passwords over many usernames. Counters live in the cache (Redis in production,
	so every web process shares them) and expire LOGIN_LOCKOUT_SECONDS after the last failure.
	"""

	logger = logging.getLogger("apg.auth")

	def __init__(self, *, username: str, ip: str | None) -> None:
		digest = hashlib.sha256(f"{username.strip().lower()}|{ip}".encode()).hexdigest()[:32]
		self._account_key = f"login-fail:acct:{digest}"
		self._client_key = f"login-fail:ip:{ip}"
		self.username = username
		self.ip = ip

	@property
	def window(self) -> int:
		"""Seconds a lockout lasts after the last failure."""
		return settings.LOGIN_LOCKOUT_SECONDS

	def is_locked(self) -> bool:
		"""Whether further attempts are refused for now."""
		limit = settings.LOGIN_MAX_FAILURES
		counts = cache.get_many([self._account_key, self._client_key])
		return counts.get(self._account_key, 0) >= limit or counts.get(self._client_key, 0) >= limit * 4

	def record_failure(self) -> None:
		"""Count one failed attempt."""
		for key in (self._account_key, self._client_key):
			if not cache.add(key, 1, timeout=self.window):
				try:
					cache.incr(key)
					cache.touch(key, timeout=self.window)
				except ValueError:  # expired between add and incr
					cache.add(key, 1, timeout=self.window)
		if self.is_locked():
			self._log_lockout()

	def reset(self) -> None:
		"""Forget the account's failures after a successful sign-in."""
		cache.delete(self._account_key)

	def _log_lockout(self) -> None:
		self.logger.warning(
			"sign-in locked out after repeated failures",
			extra={"username": self.username[:150], "client_ip": self.ip},
		)
