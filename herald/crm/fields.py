"""The rules for each contact field, shared by the JSON API and the CSV import.

Each function takes raw input and returns the value to store, or raises ValidationFailed
naming the field by its JSON name.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from email_validator import EmailNotValidError, validate_email

from herald.errors import ValidationFailed
from herald.text import storable_problem

MAX_EMAIL_LENGTH = 320
MAX_NAME_LENGTH = 200
MAX_STATUS_LENGTH = 50
MAX_QUERY_LENGTH = 200
DEFAULT_STATUS = "LEAD"

# C0 controls and DEL: NUL breaks PostgreSQL text, CR/LF would reach mail headers via merges.
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")

_TRUE_WORDS = frozenset({"true", "yes", "y", "1"})
_FALSE_WORDS = frozenset({"false", "no", "n", "0", ""})


def clean_text(value: str | None, field: str, max_length: int = MAX_NAME_LENGTH) -> str:
    """Trimmed text without control characters, at most ``max_length`` characters."""
    if value is None:
        return ""
    value = value.strip()
    if len(value) > max_length:
        raise ValidationFailed(f"{field} must be at most {max_length} characters.", field=field)
    if problem := storable_problem(value):
        raise ValidationFailed(f"{field} {problem}.", field=field)
    if _CONTROL_CHARS.search(value):
        raise ValidationFailed(
            f"{field} must not contain control characters (such as NUL or line breaks).",
            field=field,
        )
    return value


def clean_email(value: str | None) -> str | None:
    """The trimmed address, or None when blank. Syntax only: no DNS lookup."""
    email = clean_text(value, "email", MAX_EMAIL_LENGTH)
    if not email:
        return None
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValidationFailed(f"email is not a valid address: {exc}", field="email") from None
    return email


def email_key(email: str | None) -> str | None:
    """What uniqueness is checked on: the address lower-cased."""
    return email.lower() if email is not None else None


def clean_status(value: str, statuses: Sequence[str]) -> str:
    """One of the org's statuses, matched case-insensitively, returned as the org spells it."""
    wanted = value.strip().upper()
    for status in statuses:
        if status.upper() == wanted:
            return status
    shown = value if len(value) <= MAX_STATUS_LENGTH else value[:MAX_STATUS_LENGTH] + "..."
    raise ValidationFailed(
        f"status {shown!r} is not one of this org's statuses: {', '.join(statuses)}.",
        field="status",
    )


def default_status(statuses: Sequence[str]) -> str:
    if DEFAULT_STATUS in statuses or not statuses:
        return DEFAULT_STATUS
    return statuses[0]


def parse_opt_out(value: str) -> bool:
    """A CSV cell: true/false, yes/no, y/n, 1/0 in any case; blank is false."""
    word = value.strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise ValidationFailed(
        "marketingOptOut must be true or false (also yes/no, 1/0).", field="marketingOptOut"
    )


def clean_query(value: str | None) -> str | None:
    if value is None:
        return None
    query = clean_text(value, "q", MAX_QUERY_LENGTH)
    return query or None
