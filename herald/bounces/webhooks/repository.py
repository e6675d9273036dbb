"""Queries on the stored webhook calls and Mailgun's used tokens. Across orgs by design:
the web app stores any org's calls in one batch, and a worker ingests any org's; each row
carries its org, which the ingest is given."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import delete, exists, insert, select
from sqlalchemy.orm import Session

from herald.bounces.webhooks.models import MailgunToken, WebhookDelivery
from herald.db import lock_skip_locked


def any_waiting(session: Session) -> bool:
    """Is a stored call waiting to be ingested (one that failed is not)?"""
    return bool(session.scalar(select(exists().where(WebhookDelivery.failed_at.is_(None)))))


def take_waiting(session: Session, limit: int) -> list[WebhookDelivery]:
    """The oldest waiting calls, locked for this transaction (others' skipped)."""
    stmt = (
        select(WebhookDelivery)
        .where(WebhookDelivery.failed_at.is_(None))
        .order_by(WebhookDelivery.id)
        .limit(limit)
    )
    return list(session.scalars(lock_skip_locked(stmt, session)))


def forget(session: Session, ids: Collection[int]) -> None:
    """Calls that were ingested."""
    if ids:
        session.execute(delete(WebhookDelivery).where(WebhookDelivery.id.in_(ids)))


def store(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Calls to ingest (each row: org_id, source, body, received_at)."""
    if rows:
        session.execute(insert(WebhookDelivery), list(rows))


def used_tokens(session: Session, tokens: Collection[str]) -> set[str]:
    """Which of these Mailgun tokens were accepted before."""
    if not tokens:
        return set()
    found = select(MailgunToken.token).where(MailgunToken.token.in_(tokens))
    return set(session.scalars(found))


def record_tokens(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Mailgun tokens now used (each row: token, signed_at); IntegrityError if one was."""
    session.execute(insert(MailgunToken), list(rows))


def record_token(session: Session, token: str, signed_at: dt.datetime) -> None:
    session.add(MailgunToken(token=token, signed_at=signed_at))
    session.flush()


def forget_tokens_before(session: Session, when: dt.datetime) -> None:
    session.execute(delete(MailgunToken).where(MailgunToken.signed_at < when))
