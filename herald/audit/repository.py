"""Queries on the audit log: the org's events newest first, and the account a login names."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from herald.audit.models import AuditEvent
from herald.orgs.models import User
from herald.tenancy import OrgRepository


class AuditRepository(OrgRepository[AuditEvent]):
    model = AuditEvent
    noun = "audit event"

    def newest_first(self, page: int, page_size: int) -> tuple[list[AuditEvent], int]:
        stmt = self.select()
        rows = self.session.scalars(
            stmt.order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
            .offset((page - 1) * page_size)
            .limit(page_size)
        )
        return list(rows), self.count(stmt)


def account_for_login(session: Session, email: str) -> User | None:
    """The account a login attempt names. Not org-scoped: a login's email is what tells
    Herald the org (emails are unique across orgs)."""
    return session.scalars(select(User).where(User.email == email.strip().lower())).one_or_none()
