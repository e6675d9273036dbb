"""Encryption at rest for secrets we must read back (SMTP passwords, TOTP seeds).

Keys are derived from HERALD_SECRET_KEY with HKDF, one per purpose, so a leak of one
purpose's key says nothing about another's.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def derive_key(secret_key: str, purpose: str, length: int = 32) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=purpose.encode())
    return hkdf.derive(secret_key.encode())


class SecretBox:
    def __init__(self, secret_key: str, purpose: str) -> None:
        self._fernet = Fernet(base64.urlsafe_b64encode(derive_key(secret_key, purpose)))

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def open(self, token: str) -> str:
        """Decrypt; raises ValueError when the secret key changed or the value was tampered."""
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("cannot decrypt: wrong HERALD_SECRET_KEY or tampered value") from exc
