"""Queries on an org's bounce reports (and the raw reports they come from)."""

from __future__ import annotations

import uuid
from typing import Any, cast

from sqlalchemy import Insert, Select, Table, bindparam, func, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from herald.bounces.models import BounceReport, RawReport


def _insert_ignoring_conflict(
    dialect: str, table: Any, columns: list[str], where: Any = None
) -> Insert:
    """INSERT ... ON CONFLICT (columns) DO NOTHING RETURNING id: the one place where
    SQLite and PostgreSQL need their own construct (the same SQL in both)."""
    insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
    target = [table.c[name] for name in columns]
    return (
        insert(table)
        .on_conflict_do_nothing(index_elements=target, index_where=where)
        .returning(table.c.id)
    )


_RAW = cast(Table, RawReport.__table__)
_REPORTS = cast(Table, BounceReport.__table__)
_STATEMENTS: dict[str, tuple[Insert, Insert]] = {}
_INSERT_REPORT = insert(_REPORTS).returning(_REPORTS.c.id)
_COUNTED = select(_REPORTS.c.id).where(
    _REPORTS.c.org_id == bindparam("org_id"), _REPORTS.c.event_key == bindparam("event_key")
)


def _statements(dialect: str) -> tuple[Insert, Insert]:
    """(insert a raw report unless its digest is known, insert a counted report unless its
    event key is known)."""
    if dialect not in _STATEMENTS:
        _STATEMENTS[dialect] = (
            _insert_ignoring_conflict(dialect, _RAW, ["org_id", "sha256"]),
            _insert_ignoring_conflict(
                dialect, _REPORTS, ["org_id", "event_key"], text("event_key IS NOT NULL")
            ),
        )
    return _STATEMENTS[dialect]


class BounceRepository:
    """Reports have integer ids; like every tenant query these are scoped by org."""

    def __init__(self, session: Session, org_id: uuid.UUID) -> None:
        self.session = session
        self.org_id = org_id

    def raw_by_digest(self, sha256: str) -> RawReport | None:
        return self.session.scalars(
            select(RawReport).where(RawReport.org_id == self.org_id, RawReport.sha256 == sha256)
        ).one_or_none()

    def insert_raw(self, values: dict[str, Any]) -> int | None:
        """The new raw report's id; None when the org has one with this digest already."""
        connection = self.session.connection()
        statement, _ = _statements(connection.dialect.name)
        found = connection.execute(statement, {**values, "org_id": self.org_id}).scalar()
        return int(found) if found is not None else None

    def insert_report(self, values: dict[str, Any]) -> int | None:
        """The new report's id; with an ``event_key``, None when a report with that key
        was counted already (a unique index decides between two at once)."""
        connection = self.session.connection()
        values = {**values, "org_id": self.org_id}
        if values.get("event_key") is None:
            return int(connection.execute(_INSERT_REPORT, values).scalar_one())
        _, counted = _statements(connection.dialect.name)
        found = connection.execute(counted, values).scalar()
        return int(found) if found is not None else None

    def counted_id(self, event_key: str) -> int | None:
        found = (
            self.session.connection()
            .execute(_COUNTED, {"org_id": self.org_id, "event_key": event_key})
            .scalar()
        )
        return int(found) if found is not None else None

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

    def reports_of_raw(self, raw_id: int) -> list[BounceReport]:
        return list(
            self.session.scalars(
                select(BounceReport)
                .where(BounceReport.org_id == self.org_id, BounceReport.raw_id == raw_id)
                .order_by(BounceReport.id)
            )
        )

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
