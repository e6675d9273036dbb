"""Queries on contacts and contact statuses, every one scoped to one org."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Select,
    Table,
    bindparam,
    case,
    func,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy import cast as cast_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY

from herald.crm.models import Contact, ContactStatus, EmailStatus
from herald.tenancy import OrgRepository, contains_text


@dataclass(frozen=True)
class ContactAddress:
    """A contact's address and email status, as a bounce needs them."""

    id: uuid.UUID
    email_key: str | None
    email_status: str
    email_status_at: dt.datetime | None


_ADDRESS = select(
    Contact.id, Contact.email_key, Contact.email_status, Contact.email_status_at
).where(Contact.id == bindparam("contact_id"), Contact.org_id == bindparam("org_id"))
_BOUNCED = (
    update(Contact)
    .where(
        Contact.id == bindparam("contact"),
        Contact.org_id == bindparam("org"),
        Contact.email_key == bindparam("address"),
        Contact.email_status == EmailStatus.OK.value,
    )
    .values(
        email_status=EmailStatus.BOUNCED.value,
        email_status_reason=bindparam("reason"),
        email_status_at=bindparam("at", type_=Contact.email_status_at.type),
        updated_at=bindparam("at", type_=Contact.email_status_at.type),
    )
)


class StatusRepository(OrgRepository[ContactStatus]):
    model = ContactStatus
    noun = "status"

    def names(self) -> list[str]:
        stmt = self.select(ContactStatus.name).order_by(ContactStatus.position, ContactStatus.name)
        return list(self.session.scalars(stmt))


class ContactRepository(OrgRepository[Contact]):
    model = Contact
    noun = "contact"

    def search(self, status: str | None = None, query: str | None = None) -> Select[Any]:
        """Contacts of the org, newest first; ``query`` matches a substring of email or names."""
        stmt = self.select()
        if status is not None:
            stmt = stmt.where(Contact.status == status)
        if query:
            stmt = stmt.where(
                contains_text(
                    query,
                    Contact.email,
                    Contact.first_name,
                    Contact.last_name,
                    Contact.company_name,
                )
            )
        return stmt.order_by(Contact.created_at.desc(), Contact.id.desc())

    def page(self, stmt: Select[Any], page: int, page_size: int) -> list[Contact]:
        return list(self.session.scalars(stmt.offset((page - 1) * page_size).limit(page_size)))

    def find_by_email_key(self, key: str) -> Contact | None:
        return self.session.scalars(self.select().where(Contact.email_key == key)).one_or_none()

    def address(self, contact_id: uuid.UUID) -> ContactAddress | None:
        values = {"contact_id": contact_id, "org_id": self.org_id}
        row = self.session.connection().execute(_ADDRESS, values).one_or_none()
        return ContactAddress(*row) if row else None

    def mark_bounced(
        self, contact_id: uuid.UUID, address: str, reason: str, at: dt.datetime
    ) -> bool:
        """OK -> BOUNCED while ``address`` (lower-cased) is still the contact's."""
        values = {"contact": contact_id, "org": self.org_id, "address": address.lower()}
        values.update(reason=reason, at=at)
        return bool(self.session.connection().execute(_BOUNCED, values).rowcount)

    def mark_complained(self, contact_id: uuid.UUID, reason: str, at: dt.datetime) -> bool:
        """Opted out and COMPLAINED, unless it already was COMPLAINED."""
        done = self.session.execute(
            update(Contact)
            .where(*self._this(contact_id), Contact.email_status != EmailStatus.COMPLAINED.value)
            .values(
                marketing_opt_out=true(),
                email_status=EmailStatus.COMPLAINED.value,
                email_status_reason=reason,
                email_status_at=at,
                updated_at=at,
            )
            .execution_options(synchronize_session=False)
        )
        return bool(cast(CursorResult[Any], done).rowcount)

    def opt_out(self, contact_id: uuid.UUID) -> None:
        self.session.execute(
            update(Contact)
            .where(*self._this(contact_id))
            .values(marketing_opt_out=true())
            .execution_options(synchronize_session=False)
        )

    def _this(self, contact_id: uuid.UUID) -> tuple[ColumnElement[bool], ...]:
        return (Contact.id == contact_id, Contact.org_id == self.org_id)

    def upsert_many(self, rows: Sequence[dict[str, Any]], *, set_status: bool) -> set[Any]:
        """Insert each row, or update the org's contact holding its ``email_key``; return the
        ids written. A row inserted keeps the id it carries, so comparing ids tells created
        from updated.

        Each row carries every column but ``org_id``. On update the stored email stays, a
        blank ('') name keeps the stored one, an opt-out is never cleared, and the status
        changes only when ``set_status``. Rows must not repeat an ``email_key``.
        The unique index decides, so no lookup depends on the planner's row estimates
        (which are wrong while a new org's first big import is still uncommitted).
        """
        if not rows:
            return set()
        table = cast(Table, Contact.__table__)
        if self.session.get_bind().dialect.name == "postgresql":
            stmt: Any = postgresql.insert(table).from_select(
                _UPSERT_COLUMNS, _pg_unnest(table, rows, self.org_id)
            )
            params: Any = None
        else:
            stmt = sqlite.insert(table)
            params = [{**row, "org_id": self.org_id} for row in rows]
        upsert = stmt.on_conflict_do_update(
            index_elements=[table.c.org_id, table.c.email_key],
            set_=_on_conflict_changes(table, stmt.excluded, set_status),
        ).returning(table.c.id)
        return set(self.session.connection().execute(upsert, params).scalars())


_UPSERT_COLUMNS = [
    "id",
    "org_id",
    "email",
    "email_key",
    "first_name",
    "last_name",
    "company_name",
    "status",
    "marketing_opt_out",
    "created_at",
    "updated_at",
]


def _on_conflict_changes(table: Table, excluded: Any, set_status: bool) -> dict[str, Any]:
    changes: dict[str, Any] = {
        name: case((excluded[name] == "", table.c[name]), else_=excluded[name])
        for name in ("first_name", "last_name", "company_name")
    }
    changes["marketing_opt_out"] = or_(table.c.marketing_opt_out, excluded.marketing_opt_out)
    changes["updated_at"] = excluded.updated_at
    if set_status:
        changes["status"] = excluded.status
    return changes


def _pg_unnest(table: Table, rows: Sequence[dict[str, Any]], org_id: Any) -> Select[Any]:
    """PostgreSQL only: the rows as one array per column, so that a chunk is one short
    statement with a dozen parameters (about four times faster than a VALUES list)."""
    names = [name for name in _UPSERT_COLUMNS if name != "org_id"]
    arrays = [
        cast_(
            bindparam(f"rows_{name}", [row[name] for row in rows], type_=ARRAY(table.c[name].type)),
            ARRAY(table.c[name].type),
        )
        for name in names
    ]
    unnested = func.unnest(*arrays).table_valued(*names).render_derived()
    org = literal(org_id, type_=table.c.org_id.type)
    return select(*(org if name == "org_id" else unnested.c[name] for name in _UPSERT_COLUMNS))
