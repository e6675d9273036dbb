"""Who a campaign may mail: the one "may this contact be mailed" rule, and the audience built
on it, shared by the launch, the dispatch check, the CLI's counts and the form's live count.

Audiences: everyone, by CRM status, or (made by duplicating a SENT campaign) the contacts
that campaign was delivered to who have no human open (NOT_OPENED) or no human click
(NOT_CLICKED) of it; every one of them still through MAILABLE, at launch.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, select
from sqlalchemy.orm import Session

from herald.crm.models import Contact, EmailStatus
from herald.marketing.models import MarketingSend, SendStatus

# A contact may be mailed: it has an address, has not opted out, and its address has not
# bounced or complained (emailStatus OK). Null-safe (IS, IS NOT) where it matters, so over
# an outer join a missing (deleted) contact is not mailable either.
MAILABLE: ColumnElement[bool] = and_(
    Contact.email_key.is_not(None),
    Contact.marketing_opt_out.is_(False),
    Contact.email_status == EmailStatus.OK.value,
)
# Why a send launched to a contact that is no longer MAILABLE was not sent.
NOT_MAILABLE_REASON = (
    "Not sent: the contact may no longer be mailed (opted out, address bounced or "
    "complained, or deleted)."
)
ENGAGEMENT_AUDIENCES = ("NOT_OPENED", "NOT_CLICKED")


def eligible_contacts(org_id: uuid.UUID, audience: dict[str, Any]) -> Select[Any]:
    """The org's mailable contacts, filtered by the audience.

    One per distinct address: ``email_key`` (the lower-cased email) is unique per org
    (uq_contacts_org_email_key), so no DISTINCT is needed here.
    """
    stmt = select(Contact).where(Contact.org_id == org_id, MAILABLE)
    kind = audience.get("type")
    if kind == "STATUS":
        stmt = stmt.where(Contact.status.in_(list(audience.get("statuses") or [])))
    elif kind in ENGAGEMENT_AUDIENCES:
        stmt = stmt.where(Contact.id.in_(_not_engaged(org_id, kind, audience.get("campaignId"))))
    return stmt


def _not_engaged(org_id: uuid.UUID, kind: str, campaign_id: object) -> Select[Any]:
    """The contacts a campaign of the org delivered to without a human open (click) of it;
    a human click is a human open too."""
    S = MarketingSend
    try:
        source = uuid.UUID(str(campaign_id))
    except ValueError:
        source = uuid.UUID(int=0)  # names no campaign: nobody
    stmt = select(S.contact_id).where(
        S.org_id == org_id,
        S.campaign_id == source,
        S.status == SendStatus.DELIVERED.value,
        S.click_human_at.is_(None),
    )
    if kind == "NOT_OPENED":
        stmt = stmt.where(S.open_human_at.is_(None))
    return stmt


def count_eligible(session: Session, org_id: uuid.UUID, audience: dict[str, Any]) -> int:
    counted = eligible_contacts(org_id, audience).with_only_columns(func.count())
    return int(session.scalar(counted) or 0)
