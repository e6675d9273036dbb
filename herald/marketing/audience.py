"""Who a campaign may mail: the one "may this contact be mailed" rule, and the audience built
on it, shared by the launch, the dispatch check, the CLI's counts and the form's live count."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, select
from sqlalchemy.orm import Session

from herald.crm.models import Contact, EmailStatus

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


def eligible_contacts(org_id: uuid.UUID, audience: dict[str, Any]) -> Select[Any]:
    """The org's mailable contacts, filtered by the audience.

    One per distinct address: ``email_key`` (the lower-cased email) is unique per org
    (uq_contacts_org_email_key), so no DISTINCT is needed here.
    """
    stmt = select(Contact).where(Contact.org_id == org_id, MAILABLE)
    if audience.get("type") == "STATUS":
        stmt = stmt.where(Contact.status.in_(list(audience.get("statuses") or [])))
    return stmt


def count_eligible(session: Session, org_id: uuid.UUID, audience: dict[str, Any]) -> int:
    counted = eligible_contacts(org_id, audience).with_only_columns(func.count())
    return int(session.scalar(counted) or 0)
