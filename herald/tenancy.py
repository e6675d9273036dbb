"""Tenant scoping in one place: every repository of tenant rows derives from OrgRepository."""

from __future__ import annotations

import uuid
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.orm import Session

from herald.db import OrgScoped
from herald.errors import NotFound

M = TypeVar("M", bound=OrgScoped)


def contains_text(query: str, *columns: Any) -> ColumnElement[bool]:
    """Case-insensitive "contains" on any of ``columns``; % and _ in the query are literal."""
    escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = f"%{escaped}%"
    return or_(*(column.ilike(pattern, escape="\\") for column in columns))


def parse_id(value: str | uuid.UUID) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


class OrgRepository(Generic[M]):
    """Queries on one model, always filtered by the caller's org.

    An id of another org, or one that is not a valid id at all, is simply not found.
    """

    model: type[M]
    noun: str = "resource"

    def __init__(self, session: Session, org_id: uuid.UUID) -> None:
        self.session = session
        self.org_id = org_id

    def select(self, *columns: Any) -> Select[Any]:
        stmt = select(*columns) if columns else select(self.model)
        return stmt.where(self.model.org_id == self.org_id)

    def find(self, id_: str | uuid.UUID) -> M | None:
        parsed = parse_id(id_)
        if parsed is None:
            return None
        return self.session.scalars(
            self.select().where(self.model.id == parsed)  # type: ignore[attr-defined]
        ).one_or_none()

    def get(self, id_: str | uuid.UUID) -> M:
        found = self.find(id_)
        if found is None:
            raise NotFound(f"{self.noun.capitalize()} not found.")
        return found

    def add(self, row: M) -> M:
        row.org_id = self.org_id
        self.session.add(row)
        self.session.flush()
        return row

    def delete(self, row: M) -> None:
        if row.org_id != self.org_id:
            raise NotFound(f"{self.noun.capitalize()} not found.")
        self.session.delete(row)
        self.session.flush()

    def count(self, stmt: Select[Any]) -> int:
        counted = stmt.order_by(None).with_only_columns(func.count()).select_from(self.model)
        return int(self.session.scalar(counted) or 0)
