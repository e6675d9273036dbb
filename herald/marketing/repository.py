"""Org-scoped queries on campaigns and sends for the API and pages.

The workers' queue queries (claim, lease, outcomes) live in queue.py.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Boolean, ColumnElement, Row, Select, func, select, type_coerce, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from herald.crm.models import Contact
from herald.db import utcnow
from herald.errors import NotFound
from herald.marketing.models import Campaign, MarketingSend, SendStatus
from herald.orgs.models import Org
from herald.tenancy import OrgRepository, contains_text


class CampaignRepository(OrgRepository[Campaign]):
    model = Campaign
    noun = "campaign"

    def get_for_update(self, id_: str | uuid.UUID) -> Campaign:
        campaign = self.get(id_)
        self.session.refresh(campaign, with_for_update=True)
        return campaign

    def newest_first(self, status: str | None = None) -> Select[Any]:
        stmt = self.select()
        if status is not None:
            stmt = stmt.where(Campaign.status == status)
        return stmt.order_by(Campaign.created_at.desc(), Campaign.id.desc())

    def page(self, stmt: Select[Any], page: int, page_size: int) -> list[Campaign]:
        return list(self.session.scalars(stmt.offset((page - 1) * page_size).limit(page_size)))


# --- across orgs: only for the operator CLI, which has the database and no org to scope by.
# Request handlers always go through CampaignRepository.


def campaign_in_any_org(session: Session, campaign_id: uuid.UUID) -> Campaign | None:
    """A campaign by its id (ids are globally unique), whatever its org."""
    return session.get(Campaign, campaign_id)


def all_orgs_newest_first(status: str | None = None) -> Select[Campaign, str]:
    """Every org's campaigns with their org's name: rows of (Campaign, name), newest first."""
    stmt = select(Campaign, Org.name).join(Org, Org.id == Campaign.org_id)
    if status is not None:
        stmt = stmt.where(Campaign.status == status)
    return stmt.order_by(Campaign.created_at.desc(), Campaign.id.desc())


def count_all_orgs(session: Session, status: str | None = None) -> int:
    stmt = select(func.count()).select_from(Campaign)
    if status is not None:
        stmt = stmt.where(Campaign.status == status)
    return int(session.scalar(stmt) or 0)


class SendRepository:
    """Sends have integer ids; like every tenant query these are scoped by org."""

    def __init__(self, session: Session, org_id: uuid.UUID) -> None:
        self.session = session
        self.org_id = org_id

    def select(self, *columns: Any) -> Select[Any]:
        stmt = select(*columns) if columns else select(MarketingSend)
        return stmt.where(MarketingSend.org_id == self.org_id)

    def get(self, send_id: str | int) -> MarketingSend:
        try:
            parsed = int(send_id)
        except (TypeError, ValueError):
            raise NotFound("Send not found.") from None
        if not 0 < parsed < 2**63:
            raise NotFound("Send not found.")
        send = self.session.scalars(self.select().where(MarketingSend.id == parsed)).one_or_none()
        if send is None:
            raise NotFound("Send not found.")
        return send

    def without_deleted_contacts(self, sends: list[MarketingSend]) -> list[MarketingSend]:
        """A send keeps the id of its contact after the contact is deleted (sends have no
        foreign key, see the model); callers see None then, as they always have."""
        ids = {send.contact_id for send in sends if send.contact_id is not None}
        if not ids:
            return sends
        existing = set(
            self.session.scalars(
                select(Contact.id).where(Contact.org_id == self.org_id, Contact.id.in_(ids))
            )
        )
        for send in sends:
            if send.contact_id is not None and send.contact_id not in existing:
                set_committed_value(send, "contact_id", None)  # shown, never written back
        return sends

    @staticmethod
    def _log_filter(
        campaign_id: uuid.UUID, status: str | None, query: str | None
    ) -> list[ColumnElement[bool]]:
        conditions = [MarketingSend.campaign_id == campaign_id]
        if status is not None:
            conditions.append(MarketingSend.status == status)
        if query:
            conditions.append(
                contains_text(
                    query, MarketingSend.email, MarketingSend.first_name, MarketingSend.last_name
                )
            )
        return conditions

    def log(
        self, campaign_id: uuid.UUID, status: str | None = None, query: str | None = None
    ) -> Select[Any]:
        """The campaign's sends by id; ``query`` matches a substring of the email or names."""
        return (
            self.select()
            .where(*self._log_filter(campaign_id, status, query))
            .order_by(MarketingSend.id)
        )

    def log_page(
        self,
        campaign_id: uuid.UUID,
        status: str | None,
        query: str | None,
        *,
        page: int,
        page_size: int,
        total: int | None = None,
    ) -> list[MarketingSend]:
        """One page of ``log()``, reached by walking the index rather than the rows.

        The page's ids are found first: without a search, an index-only scan of
        (campaign_id, status, id), which needs no org filter since the rows it picks are
        then read through the org-scoped ``select()``. Given the exact ``total``, a page past
        the middle is counted from the end, so the last page costs what the first does.
        """
        offset = (page - 1) * page_size
        ids = select(MarketingSend.id).where(*self._log_filter(campaign_id, status, query))
        order = MarketingSend.id.asc()
        if total is not None:
            if offset >= total:
                return []
            rows = min(page_size, total - offset)
            from_end = total - offset - rows
            if from_end < offset:
                order, offset, page_size = MarketingSend.id.desc(), from_end, rows
        chosen = ids.order_by(order).offset(offset).limit(page_size).scalar_subquery()
        stmt = self.select().where(MarketingSend.id.in_(chosen)).order_by(MarketingSend.id)
        return list(self.session.scalars(stmt))

    def count(self, stmt: Select[Any]) -> int:
        counted = stmt.order_by(None).with_only_columns(func.count()).select_from(MarketingSend)
        return int(self.session.scalar(counted) or 0)

    def count_in_status(self, campaign_id: uuid.UUID, status: str) -> int:
        """Exact, from the (campaign_id, status, id) index alone: meant for the few sends in
        flight. Give it a campaign of this org (found through CampaignRepository): it reads
        no org column, only how many."""
        counted = select(func.count()).where(*self._log_filter(campaign_id, status, None))
        return int(self.session.scalar(counted) or 0)

    def export_page(
        self, campaign_id: uuid.UUID, after_id: int, limit: int, status: str | None = None
    ) -> list[Row[Any]]:
        """Keyset page for the CSV: the columns it shows, for sends with an id over ``after_id``
        (and with ``status``, when given)."""
        stmt = (
            self.select(
                MarketingSend.id,
                MarketingSend.email,
                MarketingSend.first_name,
                MarketingSend.last_name,
                MarketingSend.status,
                MarketingSend.delivered_at,
                MarketingSend.opened_at,
                MarketingSend.error,
                MarketingSend.bounce_type,
                MarketingSend.bounced_at,
                MarketingSend.complained_at,
                MarketingSend.clicked_at,
                type_coerce(MarketingSend.machine, Boolean).label("machine"),
            )
            .where(MarketingSend.campaign_id == campaign_id, MarketingSend.id > after_id)
            .order_by(MarketingSend.id)
            .limit(limit)
        )
        if status is not None:
            stmt = stmt.where(MarketingSend.status == status)
        return list(self.session.execute(stmt).all())

    def requeue(self, send: MarketingSend, from_status: str) -> bool:
        """Put a finished send back in the queue, due now; False if its status moved meanwhile.

        The error stays until the new outcome replaces it; attempts restart at 0 so the
        retry backoff and window start afresh.
        """
        result = self.session.execute(
            update(MarketingSend)
            .where(
                MarketingSend.id == send.id,
                MarketingSend.org_id == self.org_id,
                MarketingSend.status == from_status,
            )
            .values(
                status=SendStatus.QUEUED.value,
                attempts=0,
                next_attempt_at=utcnow(),
                first_attempt_at=None,
                lease_owner=None,
                lease_expires_at=None,
            )
            .execution_options(synchronize_session=False)
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            return False
        self.session.refresh(send)
        return True
