"""Queries on an org's bounce reports (and the raw reports they come from)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from herald.bounces.models import BounceReport, RawReport


class BounceRepository:
    """Reports have integer ids; like every tenant query these are scoped by org."""

    def __init__(self, session: Session, org_id: uuid.UUID) -> None:
        self.session = session
        self.org_id = org_id

    def raw_by_digest(self, sha256: str) -> RawReport | None:
        return self.session.scalars(
            select(RawReport).where(RawReport.org_id == self.org_id, RawReport.sha256 == sha256)
        ).one_or_none()

    def reports_of_raw(self, raw_id: int) -> list[BounceReport]:
        return list(
            self.session.scalars(
                select(BounceReport)
                .where(BounceReport.org_id == self.org_id, BounceReport.raw_id == raw_id)
                .order_by(BounceReport.id)
            )
        )

    def counted_with_key(self, event_key: str) -> BounceReport | None:
        return self.session.scalars(
            select(BounceReport).where(
                BounceReport.org_id == self.org_id, BounceReport.event_key == event_key
            )
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
