"""The email log as CSV, streamed: keyset pages by send id, each read in its own short session,
so an export of a million sends never holds them all nor keeps a transaction open."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterator

from sqlalchemy.orm import Session, sessionmaker

from herald.marketing.repository import SendRepository
from herald.spreadsheet import csv_text, header_text, neutralise

__all__ = ["attachment_name", "csv_chunks", "neutralise"]

HEADER = (
    "email",
    "firstName",
    "lastName",
    "status",
    "deliveredAt",
    "openedAt",
    "error",
    # bounces and complaints
    "bounceType",
    "bouncedAt",
    "complainedAt",
    "clickedAt",
    "machine",
)
PAGE_SIZE = 1000


def _cell(value: str | dt.datetime | bool | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return neutralise(value)


def csv_chunks(
    sessions: sessionmaker[Session],
    org_id: uuid.UUID,
    campaign_id: uuid.UUID,
    page_size: int = PAGE_SIZE,
    status: str | None = None,
) -> Iterator[str]:
    """The header, then one chunk of CSV text per page of sends (only those with ``status``
    when given), ordered by id."""
    yield header_text(HEADER)
    after = 0
    while True:
        with sessions() as session:
            rows = SendRepository(session, org_id).export_page(
                campaign_id, after, page_size, status
            )
        if not rows:
            return
        yield csv_text(
            [
                tuple(
                    _cell(v)
                    for v in (
                        row.email,
                        row.first_name,
                        row.last_name,
                        row.status,
                        row.delivered_at,
                        row.opened_at,
                        row.error,
                        row.bounce_type,
                        row.bounced_at,
                        row.complained_at,
                        row.clicked_at,
                        row.machine,
                    )
                )
                for row in rows
            ]
        )
        if len(rows) < page_size:
            return
        after = rows[-1].id


def attachment_name(campaign_name: str) -> str:
    """A safe ASCII file name for Content-Disposition, from the campaign's name."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", campaign_name).strip("-.")[:80]
    return f"{slug or 'campaign'}-sends.csv"
