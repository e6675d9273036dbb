"""argon2id password hashes, and the rule a new password must meet."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from herald.errors import ValidationFailed

MIN_PASSWORD_LENGTH = 8

_hasher = PasswordHasher()
# Verified against when the email is unknown, so both answers take the same time. Written out
# (at the hasher's cost: tests/auth/test_login.py checks) because hashing it at import cost
# every process 0.2-0.3 s of CPU, the CLI's commands included.
_DUMMY_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$bTsEMSJNZ+2Gm0iLJ8uerw"
    "$cMMCpdINCzSI9zBabOeuMIIXIKix05MkmjMtIxb/zyc"
)


def check_new_password(password: str, field: str = "password") -> None:
    """422 naming ``field`` for a password too short to be set."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(
            f"The password needs at least {MIN_PASSWORD_LENGTH} characters.", field=field
        )


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False
