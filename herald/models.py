"""Every mapped model, imported once so the metadata is complete (Alembic, create_all)."""

from herald.audit.models import AuditEvent
from herald.auth.models import LoginFailure, RefreshToken
from herald.bounces.models import BounceReport, RawReport
from herald.bounces.webhooks.models import MailgunToken, WebhookDelivery
from herald.crm.models import Contact, ContactStatus
from herald.db import Base
from herald.mailconfig.models import BounceMailboxPoll, EmailConfig
from herald.marketing.models import (
    Campaign,
    MarketingClick,
    MarketingLink,
    MarketingSend,
    RelayBudget,
    RelayConnection,
)
from herald.orgs.models import Org, User

metadata = Base.metadata

__all__ = [
    "AuditEvent",
    "BounceMailboxPoll",
    "BounceReport",
    "Campaign",
    "Contact",
    "ContactStatus",
    "EmailConfig",
    "LoginFailure",
    "MailgunToken",
    "MarketingClick",
    "MarketingLink",
    "MarketingSend",
    "Org",
    "RawReport",
    "RefreshToken",
    "RelayBudget",
    "RelayConnection",
    "User",
    "WebhookDelivery",
    "metadata",
]
