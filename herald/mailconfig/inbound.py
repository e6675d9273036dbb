"""What comes back from the mail, as configured per org: the bounce mailbox and the mail
services' webhook keys. Saved with the email configuration; read by the webhooks (which org
a URL names, and its keys) and by the mailbox poller (the account to log in to)."""

from __future__ import annotations

import functools
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.orm import Session

from herald.audit import service as audit
from herald.db import db_now
from herald.errors import Conflict
from herald.mail import egress
from herald.mailconfig.models import BounceMailboxPoll, EmailConfig, new_webhook_key
from herald.mailconfig.repository import (
    EmailConfigRepository,
    MailboxPollRepository,
    configs_by_webhook_key,
)
from herald.mailconfig.schemas import (
    BounceMailboxIn,
    BounceMailboxOut,
    EmailConfigIn,
    MailboxSecurity,
    WebhookUrls,
    sendgrid_public_key,
)
from herald.secretbox import SecretBox
from herald.settings import Settings

WEBHOOK_SECRETBOX_PURPOSE = "herald.bounces.webhooks"
MAILBOX_SECRETBOX_PURPOSE = "herald.imap"
POSTMARK_USERNAME = "herald"
PROVIDERS = ("ses", "sendgrid", "mailgun", "postmark")
MAILBOX_FIELD = "bounceMailbox"
# What a stored mailbox password is bound to, as for SMTP.
_MAILBOX_DESTINATION = ("host", "port", "username", "security")
# Which mailbox and folder are read: where a poll's progress (UIDs) means anything.
_MAILBOX_IDENTITY = ("host", "username", "folder")
_MAILBOX_FIELDS = (*_MAILBOX_DESTINATION, "folder")


def webhook_box(settings: Settings) -> SecretBox:
    return SecretBox(settings.secret_key, WEBHOOK_SECRETBOX_PURPOSE)


def mailbox_box(settings: Settings) -> SecretBox:
    return SecretBox(settings.secret_key, MAILBOX_SECRETBOX_PURPOSE)


# -- saving ---------------------------------------------------------------------------------


def check_egress(data: EmailConfigIn, settings: Settings) -> None:
    """422 ``smtp_host_not_allowed`` for a mailbox host the egress rule refuses."""
    if data.bounce_mailbox is not None:
        egress.check_host(
            data.bounce_mailbox.host, settings.smtp_networks, field=f"{MAILBOX_FIELD}.host"
        )


def apply(session: Session, settings: Settings, row: EmailConfig, data: EmailConfigIn) -> None:
    """The bounce settings of a PUT onto the org's row; what the body left out stays."""
    given = data.model_fields_set
    if "bounce_mailbox" in given:
        _apply_mailbox(session, settings, row, data.bounce_mailbox)
    if data.sendgrid_verification_key is not None:
        row.sendgrid_verification_key = data.sendgrid_verification_key
    if data.mailgun_signing_key is not None:
        key = data.mailgun_signing_key.strip()
        row.mailgun_signing_key_sealed = webhook_box(settings).seal(key) if key else None
    if row.webhook_key is None:
        row.webhook_key = new_webhook_key()
    if row.postmark_password_sealed is None:
        row.postmark_password_sealed = webhook_box(settings).seal(_new_postmark_password())


def _apply_mailbox(
    session: Session, settings: Settings, row: EmailConfig, mailbox: BounceMailboxIn | None
) -> None:
    before = {name: getattr(row, f"bounce_mailbox_{name}") for name in _MAILBOX_FIELDS}
    sealed_before = row.bounce_mailbox_password_sealed
    if mailbox is None:
        row.bounce_mailbox_host = ""
        row.bounce_mailbox_username = ""
        row.bounce_mailbox_password_sealed = None
    else:
        row.bounce_mailbox_host = mailbox.host
        row.bounce_mailbox_port = mailbox.port_or_default
        row.bounce_mailbox_username = mailbox.username
        row.bounce_mailbox_security = mailbox.security
        row.bounce_mailbox_folder = mailbox.folder
        moved = any(
            before[name] != getattr(row, f"bounce_mailbox_{name}") for name in _MAILBOX_DESTINATION
        )
        if mailbox.password is None and moved:
            row.bounce_mailbox_password_sealed = None
        elif mailbox.password is not None:
            sealed = mailbox_box(settings).seal(mailbox.password) if mailbox.password else None
            row.bounce_mailbox_password_sealed = sealed
    after = {name: getattr(row, f"bounce_mailbox_{name}") for name in _MAILBOX_FIELDS}
    polls = MailboxPollRepository(session)
    if not row.bounce_mailbox_host or any(before[n] != after[n] for n in _MAILBOX_IDENTITY):
        # another mailbox: read from its start, and the last poll's outcome no longer
        # describes it (a poll still running loses its lease at its next message)
        polls.forget(row.org_id)
    elif before != after or sealed_before != row.bounce_mailbox_password_sealed:
        # the same mailbox reached anew (a new password, say): polled at once, from where
        # the last poll stopped
        polls.due_at(row.org_id, db_now(session))


def _new_postmark_password() -> str:
    return secrets.token_urlsafe(24)


def regenerate_webhook_key(
    session: Session, settings: Settings, org_id: uuid.UUID, *, actor: audit.Actor
) -> EmailConfig:
    """A new webhook key (and Postmark password): the old URLs stop working at once."""
    row = EmailConfigRepository(session, org_id).current()
    if row is None:
        raise Conflict(
            "Save the email configuration first: the webhook URLs come with it.",
            code="smtp_not_configured",
        )
    row.webhook_key = new_webhook_key()
    row.postmark_password_sealed = webhook_box(settings).seal(_new_postmark_password())
    session.flush()
    audit.record(session, actor, "email_config.webhook_key_regenerated", target="webhook URLs")
    return row


# -- what Settings shows --------------------------------------------------------------------


def webhook_urls(settings: Settings, key: str) -> WebhookUrls:
    base = settings.base_url.rstrip("/")
    return WebhookUrls(**{name: f"{base}/webhooks/{name}/{key}" for name in PROVIDERS})


def postmark_password(settings: Settings, row: EmailConfig) -> str | None:
    """None when absent or unreadable (the secret key changed: regenerate)."""
    if row.postmark_password_sealed is None:
        return None
    try:
        return webhook_box(settings).open(row.postmark_password_sealed)
    except ValueError:
        return None


def unconfigured_view() -> dict[str, Any]:
    """The bounce fields of EmailConfigOut before anything is saved."""
    return {
        "bounce_mailbox": None,
        "webhook_key": None,
        "webhook_urls": None,
        "sendgrid_verification_key": "",
        "mailgun_signing_key_set": False,
        "postmark_username": None,
        "postmark_password": None,
    }


def view(session: Session, settings: Settings, row: EmailConfig) -> dict[str, Any]:
    """The bounce fields of EmailConfigOut for a saved configuration."""
    return {
        "bounce_mailbox": mailbox_view(row, poll_status(session, row.org_id)),
        "webhook_key": row.webhook_key,
        "webhook_urls": webhook_urls(settings, row.webhook_key) if row.webhook_key else None,
        "sendgrid_verification_key": row.sendgrid_verification_key,
        "mailgun_signing_key_set": row.mailgun_signing_key_sealed is not None,
        "postmark_username": POSTMARK_USERNAME,
        "postmark_password": postmark_password(settings, row),
    }


def poll_status(session: Session, org_id: uuid.UUID) -> BounceMailboxPoll | None:
    return MailboxPollRepository(session).of_org(org_id)


def mailbox_view(row: EmailConfig, poll: BounceMailboxPoll | None) -> BounceMailboxOut | None:
    if not row.bounce_mailbox_host:
        return None
    return BounceMailboxOut(
        host=row.bounce_mailbox_host,
        port=row.bounce_mailbox_port,
        username=row.bounce_mailbox_username,
        security=parse_mailbox_security(row.bounce_mailbox_security),
        folder=row.bounce_mailbox_folder,
        password_set=row.bounce_mailbox_password_sealed is not None,
        polled_at=poll.polled_at if poll else None,
        poll_error=poll.error if poll else None,
        processed_last=poll.processed_last if poll else 0,
    )


def parse_mailbox_security(value: str) -> MailboxSecurity:
    return "starttls" if value == "starttls" else "tls"


# -- what the webhooks read -----------------------------------------------------------------


@dataclass(frozen=True)
class WebhookAccount:
    """The org a webhook URL names, and the keys its calls are checked with (None: unset)."""

    org_id: uuid.UUID
    sendgrid_key: ec.EllipticCurvePublicKey | None
    mailgun_signing_key: str | None
    postmark_password: str | None


def webhook_accounts(
    session: Session, settings: Settings, keys: set[str]
) -> dict[str, WebhookAccount]:
    """The accounts of these webhook keys (one query for a whole batch of calls); a key no
    org has is simply absent."""
    wanted = [key for key in keys if key and len(key) <= 64]
    if not wanted:
        return {}
    box = webhook_box(settings)
    return {
        row.webhook_key: WebhookAccount(
            org_id=row.org_id,
            sendgrid_key=_sendgrid_key(row.sendgrid_verification_key),
            mailgun_signing_key=_open(box, row.mailgun_signing_key_sealed),
            postmark_password=_open(box, row.postmark_password_sealed),
        )
        for row in configs_by_webhook_key(session, wanted)
        if row.webhook_key
    }


@functools.lru_cache(maxsize=1024)
def _sendgrid_key(text: str) -> ec.EllipticCurvePublicKey | None:
    """Parsed once per key text: every SendGrid call of an org carries the same key."""
    if not text:
        return None
    try:
        return sendgrid_public_key(text)
    except ValueError:
        return None


def _open(box: SecretBox, sealed: str | None) -> str | None:
    if sealed is None:
        return None
    try:
        return box.open(sealed)
    except ValueError:  # the secret key changed: the key must be entered again
        return None
