"""Queries on bounce reports and the raw reports they come from: an org's (the list, one
report), and a batch's across orgs (each row and key names its org; every query filters by
org)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Collection
from typing import Any, cast

from sqlalchemy import Insert, Select, Table, bindparam, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from herald.bounces.models import BounceReport, RawReport


def _insert_ignoring_conflict(
    dialect: str, table: Table, columns: list[str], returning: list[str], where: Any = None
) -> Insert:
    """INSERT ... ON CONFLICT (columns) DO NOTHING RETURNING ...: the one place where
    SQLite and PostgreSQL need their own construct (the same SQL in both)."""
    insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
    target = [table.c[name] for name in columns]
    return (
        insert(table)
        .on_conflict_do_nothing(index_elements=target, index_where=where)
        .returning(*(table.c[name] for name in returning))
    )


_RAW = cast(Table, RawReport.__table__)
_REPORTS = cast(Table, BounceReport.__table__)
_STATEMENTS: dict[str, tuple[Insert, Insert]] = {}
_RAW_BY_DIGEST = select(_RAW.c.id, _RAW.c.org_id, _RAW.c.sha256).where(
    _RAW.c.org_id.in_(bindparam("orgs", expanding=True)),
    _RAW.c.sha256.in_(bindparam("digests", expanding=True)),
)
# (event_key IN (...) is enough for the partial unique index; "IS NOT NULL" beside it made
# SQLite walk the org's every key from the lowest)
_COUNTED = select(_REPORTS.c.id, _REPORTS.c.org_id, _REPORTS.c.event_key).where(
    _REPORTS.c.org_id.in_(bindparam("orgs", expanding=True)),
    _REPORTS.c.event_key.in_(bindparam("keys", expanding=True)),
)

OrgKey = tuple[uuid.UUID, str]  # (org, a digest or an event key)


def _statements(dialect: str) -> tuple[Insert, Insert]:
    """(insert raw reports, skipping a digest the org has; insert reports, skipping an
    event key the org has counted)."""
    if dialect not in _STATEMENTS:
        _STATEMENTS[dialect] = (
            _insert_ignoring_conflict(
                dialect, _RAW, ["org_id", "sha256"], ["id", "org_id", "sha256"]
            ),
            _insert_ignoring_conflict(
                dialect,
                _REPORTS,
                ["org_id", "event_key"],
                ["id", "org_id", "event_key", "raw_id", "email", "type"],
                text("event_key IS NOT NULL"),
            ),
        )
    return _STATEMENTS[dialect]


def _split(keys: Collection[OrgKey], name: str) -> dict[str, list[Any]]:
    return {"orgs": sorted({org for org, _ in keys}), name: sorted({key for _, key in keys})}


def insert_raws(session: Session, rows: list[dict[str, Any]]) -> dict[OrgKey, int]:
    """Raw reports (each row with its org_id and sha256), in one statement: (org, digest)
    -> the new row's id, for those whose digest the org did not have."""
    if not rows:
        return {}
    connection = session.connection()
    statement, _ = _statements(connection.dialect.name)
    return {(org, digest): int(i) for i, org, digest in connection.execute(statement, rows)}


def raws_by_digest(session: Session, keys: Collection[OrgKey]) -> dict[OrgKey, int]:
    """(org, digest) -> the raw report recorded with it, in one query."""
    if not keys:
        return {}
    rows = session.connection().execute(_RAW_BY_DIGEST, _split(keys, "digests"))
    return {(org, digest): int(i) for i, org, digest in rows if (org, digest) in keys}


def reports_of_raws(
    session: Session, raws: Collection[tuple[uuid.UUID, int]]
) -> dict[int, list[BounceReport]]:
    """raw id -> its reports in the order they were recorded, for (org, raw id) pairs."""
    found: dict[int, list[BounceReport]] = {raw_id: [] for _, raw_id in raws}
    if not raws:
        return found
    rows = session.scalars(
        select(BounceReport)
        .where(
            BounceReport.org_id.in_({org for org, _ in raws}),
            BounceReport.raw_id.in_(list(found)),
        )
        .order_by(BounceReport.id)
    )
    for row in rows:
        if (row.org_id, row.raw_id) in raws:
            found[row.raw_id].append(row)
    return found


def counted_ids(session: Session, keys: Collection[OrgKey]) -> dict[OrgKey, int]:
    """(org, event key) -> the report that counted that event, for those counted."""
    if not keys:
        return {}
    rows = session.connection().execute(_COUNTED, _split(keys, "keys"))
    return {(org, key): int(i) for i, org, key in rows if (org, key) in keys}


def insert_reports(session: Session, rows: list[dict[str, Any]]) -> list[int | None]:
    """Reports (each row with its org_id), in one statement: each row's new id, or None for
    a row whose event key the org had counted already (a unique index decides between two
    at once)."""
    if not rows:
        return []
    connection = session.connection()
    _, statement = _statements(connection.dialect.name)
    keyed: dict[OrgKey, int] = {}
    # rows without an event key, told apart by what they hold (alike rows are interchangeable)
    others: defaultdict[tuple[Any, ...], list[int]] = defaultdict(list)
    for i, org, key, raw_id, email, kind in connection.execute(statement, rows):
        if key is not None:
            keyed[org, key] = int(i)
        else:
            others[raw_id, email, kind].append(int(i))
    for found in others.values():
        found.sort(reverse=True)
    ids: list[int | None] = []
    for row in rows:
        if row["event_key"] is not None:
            ids.append(keyed.get((row["org_id"], row["event_key"])))
        else:
            ids.append(others[row["raw_id"], row["email"], row["type"]].pop())
    return ids


class BounceRepository:
    """Reports have integer ids; like every tenant query these are scoped by org."""

    def __init__(self, session: Session, org_id: uuid.UUID) -> None:
        self.session = session
        self.org_id = org_id

    def counted(self, send_id: int, email: str, report_type: str) -> BounceReport | None:
        """The report that counted this event (the send, its recipient, the type)."""
        return self.session.scalars(
            select(BounceReport)
            .where(
                BounceReport.org_id == self.org_id,
                BounceReport.send_id == send_id,
                BounceReport.type == report_type,
                BounceReport.event_key.is_not(None),
                func.lower(BounceReport.email) == email.lower(),
            )
            .limit(1)
        ).one_or_none()

    def newest_first(self, report_type: str | None = None) -> Select[Any]:
        stmt = select(BounceReport).where(BounceReport.org_id == self.org_id)
        if report_type is not None:
            stmt = stmt.where(BounceReport.type == report_type)
        return stmt.order_by(BounceReport.received_at.desc(), BounceReport.id.desc())

    def page(self, stmt: Select[Any], page: int, page_size: int) -> list[BounceReport]:
        return list(self.session.scalars(stmt.offset((page - 1) * page_size).limit(page_size)))

    def count(self, stmt: Select[Any]) -> int:
        counted = stmt.order_by(None).with_only_columns(func.count()).select_from(BounceReport)
        return int(self.session.scalar(counted) or 0)

    def find(self, report_id: int) -> BounceReport | None:
        return self.session.scalars(
            select(BounceReport).where(
                BounceReport.org_id == self.org_id, BounceReport.id == report_id
            )
        ).one_or_none()

    def raw(self, raw_id: int) -> RawReport | None:
        return self.session.scalars(
            select(RawReport).where(RawReport.org_id == self.org_id, RawReport.id == raw_id)
        ).one_or_none()

    def latest_for_sends(self, send_ids: list[int]) -> dict[int, BounceReport]:
        """The newest counted report of each send (the email log's link to the report)."""
        if not send_ids:
            return {}
        rows = self.session.scalars(
            select(BounceReport)
            .where(
                BounceReport.org_id == self.org_id,
                BounceReport.send_id.in_(send_ids),
                BounceReport.event_key.is_not(None),
            )
            .order_by(BounceReport.id)
        )
        return {row.send_id: row for row in rows if row.send_id is not None}
