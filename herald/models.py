"""Every mapped model, imported once so the metadata is complete (Alembic, create_all)."""

from herald.audit.models import AuditEvent
from herald.auth.models import LoginFailure, RefreshToken
from herald.crm.models import Contact, ContactStatus
from herald.db import Base
from herald.mailconfig.models import EmailConfig
from herald.marketing.models import Campaign, MarketingSend, RelayBudget, RelayConnection
from herald.orgs.models import Org, User

metadata = Base.metadata

__all__ = [
    "AuditEvent",
    "Campaign",
    "Contact",
    "ContactStatus",
    "EmailConfig",
    "LoginFailure",
    "MarketingSend",
    "Org",
    "RefreshToken",
    "RelayBudget",
    "RelayConnection",
    "User",
    "metadata",
]
