"""Org-scoped queries on campaigns and sends for the API and pages, and on delivered sends
for the bounces and complaints that come back (herald.marketing.feedback).

The workers' queue queries (claim, lease, outcomes) live in queue.py.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    ColumnElement,
    CursorResult,
    Row,
    Select,
    bindparam,
    func,
    literal_column,
    select,
    type_coerce,
    update,
)
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


@dataclass(frozen=True)
class SendFacts:
    """What a bounce or complaint needs of its send."""

    id: int
    org_id: uuid.UUID
    campaign_id: uuid.UUID
    contact_id: uuid.UUID | None
    email: str
    status: str
    bounce_type: str | None
    delivered_at: dt.datetime | None


S = MarketingSend
_FACTS: tuple[Any, ...] = (S.id, S.org_id, S.campaign_id, S.contact_id, S.email, S.status)
_FACTS += (S.bounce_type, S.delivered_at)
# Inlined, the partial index's own condition: SQLite uses ix_marketing_sends_address_delivered
# only for a query naming it with the same constants.
_DELIVERED_OR_BOUNCED = S.status.in_([literal_column("'DELIVERED'"), literal_column("'BOUNCED'")])
_SEND = select(*_FACTS).where(
    S.id == bindparam("send_id", type_=S.id.type), S.org_id == bindparam("org_id")
)
_BOUNCE = (
    update(S)
    .where(
        S.id == bindparam("send_id", type_=S.id.type),
        S.org_id == bindparam("org"),
        S.status == bindparam("seen"),
    )
    .values(
        status=bindparam("status"),
        bounce_type=bindparam("bounce_type"),
        bounced_at=bindparam("at", type_=S.bounced_at.type),
        error=bindparam("error"),
    )
)


class DeliveredSendRepository:
    """The org's sends as bounces and complaints find and change them after delivery."""

    def __init__(self, session: Session, org_id: uuid.UUID) -> None:
        self.session = session
        self.org_id = org_id

    def facts(self, send_id: int) -> SendFacts | None:
        if not 0 < send_id < 2**63:
            return None
        values = {"send_id": send_id, "org_id": self.org_id}
        row = self.session.connection().execute(_SEND, values).one_or_none()
        return SendFacts(*row) if row else None

    def _to(self, email: str) -> tuple[ColumnElement[bool], ...]:
        """DELIVERED or BOUNCED to ``email`` (case-insensitively), through the partial
        index of delivered sends by address."""
        return (
            S.org_id == self.org_id,
            func.lower(S.email) == email.lower(),
            _DELIVERED_OR_BOUNCED,
        )

    def latest_to(self, email: str) -> SendFacts | None:
        stmt = select(*_FACTS).where(*self._to(email)).order_by(S.id.desc()).limit(1)
        row = self.session.execute(stmt).one_or_none()
        return SendFacts(*row) if row else None

    def newest_to(self, email: str, limit: int) -> list[tuple[int, str, dt.datetime | None]]:
        """(id, status, delivered_at) of the newest ``limit``, newest first."""
        stmt = select(S.id, S.status, S.delivered_at).where(*self._to(email))
        rows = self.session.execute(stmt.order_by(S.id.desc()).limit(limit))
        return [(send_id, status, at) for send_id, status, at in rows]

    def status(self, send_id: int) -> str | None:
        return self.session.scalar(select(S.status).where(*self._this(send_id)))

    def mark_bounced(self, send_id: int, *, seen: str, status: str, **values: object) -> bool:
        """The bounce (bounce_type, at, error) recorded, and ``status`` set, only while the
        send's status is still ``seen``."""
        parameters = {**values, "send_id": send_id, "org": self.org_id}
        parameters.update(seen=seen, status=status)
        return bool(self.session.connection().execute(_BOUNCE, parameters).rowcount)

    def harden(self, send_id: int, error: str) -> bool:
        """A soft BOUNCED send made hard; False when it was not BOUNCED soft."""
        done = self.session.execute(
            update(S)
            .where(*self._this(send_id), S.status == SendStatus.BOUNCED.value)
            .where(S.bounce_type != "hard")
            .values(bounce_type="hard", error=error)
            .execution_options(synchronize_session=False)
        )
        return bool(cast(CursorResult[Any], done).rowcount)

    def mark_complained(self, send_id: int, at: dt.datetime) -> bool:
        """complainedAt set; False when it was already."""
        done = self.session.execute(
            update(S)
            .where(*self._this(send_id), S.complained_at.is_(None))
            .values(complained_at=at)
            .execution_options(synchronize_session=False)
        )
        return bool(cast(CursorResult[Any], done).rowcount)

    def _this(self, send_id: int) -> tuple[ColumnElement[bool], ...]:
        return (S.id == send_id, S.org_id == self.org_id)
