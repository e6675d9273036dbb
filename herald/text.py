"""What text Herald can store: no NUL (PostgreSQL refuses it in text) and no lone
surrogates (not encodable as UTF-8). Checked on every API input and every page form, and
made so (``storable``) for what arrives from outside without a person to tell: reports."""

from __future__ import annotations

MAX_REASON = 2000  # the longest reason kept: a bounce's, a send's error, an email status's


def storable_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored, or None when it can."""
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode text"
    return None


def storable(value: str) -> str:
    """``value`` as Herald can store it: NULs dropped, lone surrogates replaced by "?"."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def one_line(value: str) -> str:
    """Every run of white space (line breaks too) as one space, none at the ends."""
    return " ".join(value.split())


def is_number(value: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts '²' and '①', which int() refuses."""
    return value.isascii() and value.isdigit()
