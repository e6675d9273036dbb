"""Login throttling, counted in the database: failures per account from one client address
(the tight bound), per account from everywhere (a much higher one, so that nobody elsewhere
can lock the owner out with a few guesses) and per client address across accounts."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from herald.auth.models import LoginFailure
from herald.db import utcnow
from herald.errors import RateLimited
from herald.settings import Settings


def account_key(email: str) -> str:
    # NUL and lone surrogates cannot be stored: replace them, the key only has to be stable
    cleaned = email.strip().lower()[:320].replace("\x00", "\ufffd")
    return "acct:" + cleaned.encode("utf-8", "replace").decode("utf-8")


def address_key(address: str) -> str:
    return "addr:" + address[:64]


def pair_key(email: str, address: str) -> str:
    return "pair:" + address[:64] + " " + account_key(email).removeprefix("acct:")


def lock_account(session: Session, email: str) -> None:
    """Serialise one account's login attempts until the transaction ends. PostgreSQL: an
    advisory lock; SQLite: the request's BEGIN IMMEDIATE already made it the only writer."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(func.hashtext(account_key(email)))))


def _failures_since(session: Session, key: str, since: dt.datetime) -> int:
    stmt = select(func.count()).where(LoginFailure.key == key, LoginFailure.created_at >= since)
    return int(session.scalar(stmt) or 0)


def check_allowed(session: Session, settings: Settings, email: str, address: str) -> None:
    """Raise 429 once an account or a client has used up its failures in the window."""
    since = utcnow() - dt.timedelta(seconds=settings.login_window_seconds)
    limits = (
        (pair_key(email, address), settings.login_account_max_failures),
        (account_key(email), settings.login_account_total_max_failures),
        (address_key(address), settings.login_address_max_failures),
    )
    for key, limit in limits:
        if _failures_since(session, key, since) >= limit:
            raise RateLimited(
                "Too many failed logins. Try again later.",
                code="too_many_attempts",
                headers={"Retry-After": str(settings.login_window_seconds)},
            )


def record_failure(session: Session, email: str, address: str) -> list[LoginFailure]:
    """Count an attempt as failed (under all three keys); the rows, for ``clear_account``."""
    rows = [
        LoginFailure(key=pair_key(email, address)),
        LoginFailure(key=account_key(email)),
        LoginFailure(key=address_key(address)),
    ]
    session.add_all(rows)
    session.flush()
    return rows


def clear_account(
    session: Session, settings: Settings, email: str, address: str, attempt: list[LoginFailure]
) -> None:
    """A successful login is no failure (its ``attempt`` rows go), forgives the account's
    failures from this address and prunes expired rows; others' failures still count."""
    expired = utcnow() - dt.timedelta(seconds=settings.login_window_seconds)
    session.execute(delete(LoginFailure).where(LoginFailure.id.in_([r.id for r in attempt])))
    session.execute(delete(LoginFailure).where(LoginFailure.key == pair_key(email, address)))
    session.execute(delete(LoginFailure).where(LoginFailure.created_at < expired))
