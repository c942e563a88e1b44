"""Encryption at rest for secrets: Fernet (AES-128-CBC + HMAC-SHA256) from the ``cryptography`` package.

The key is SECRETS_ENCRYPTION_KEY when set (a Fernet key; several, comma-separated, to
rotate: the first encrypts, all decrypt), else one derived from SECRET_KEY with HKDF, so
the embedded set-up needs no extra configuration.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

__all__ = ["DecryptionError", "decrypt", "encrypt"]


class DecryptionError(Exception):
	"""A stored value cannot be decrypted with the configured keys (the key changed?)."""


@lru_cache(maxsize=4)
def _fernet(keys: str, secret_key: str) -> MultiFernet:
	if keys:
		return MultiFernet([Fernet(k.strip().encode()) for k in keys.split(",") if k.strip()])
	derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"apg-secrets-v1", info=b"fernet").derive(
		secret_key.encode()
	)
	return MultiFernet([Fernet(base64.urlsafe_b64encode(derived))])


def _current() -> MultiFernet:
	return _fernet(settings.SECRETS_ENCRYPTION_KEY or "", settings.SECRET_KEY)


def encrypt(value: str) -> str:
	"""The encrypted form of ``value`` (ASCII, safe to store)."""
	return _current().encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
	"""The plain value of ``token``."""
	try:
		return _current().decrypt(token.encode()).decode()
	except InvalidToken:
		raise DecryptionError(
			"A stored secret cannot be decrypted; was SECRETS_ENCRYPTION_KEY or SECRET_KEY changed?"
		) from None
