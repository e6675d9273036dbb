"""Reading and saving an org's email configuration, and turning it into a usable mail account."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from herald.audit import service as audit
from herald.errors import Conflict
from herald.mail import egress
from herald.mail.smtp import SmtpSettings
from herald.mailconfig import inbound
from herald.mailconfig.account import MailAccount, RelayLimits
from herald.mailconfig.bounceaddress import bounce_addresses
from herald.mailconfig.models import EmailConfig
from herald.mailconfig.repository import EmailConfigRepository
from herald.mailconfig.schemas import SECURITY_MODES, EmailConfigIn, Security
from herald.secretbox import SecretBox
from herald.settings import Settings

SMTP_SECRETBOX_PURPOSE = "herald.smtp"


def smtp_box(settings: Settings) -> SecretBox:
    return SecretBox(settings.secret_key, SMTP_SECRETBOX_PURPOSE)


def get_config(session: Session, org_id: uuid.UUID) -> EmailConfig | None:
    return EmailConfigRepository(session, org_id).current()


def save_config(
    session: Session,
    settings: Settings,
    org_id: uuid.UUID,
    data: EmailConfigIn,
    *,
    actor: audit.Actor,
) -> EmailConfig:
    """Replace the org's configuration. The password belongs to its destination: ``None``
    keeps the stored one only while host, port, username and security stay the same, ``""``
    clears it. The relay's limits and the bounce settings left out of the body stay as they
    are. 422 ``smtp_host_not_allowed`` for a host the egress rule refuses."""
    egress.check_host(data.host, settings.smtp_networks)
    inbound.check_egress(data, settings)
    current = get_config(session, org_id)
    values: dict[str, Any] = {
        "host": data.host,
        "port": data.port,
        "username": data.username,
        "security": data.security,
        "default_from_name": data.default_from_name,
        "default_from_email": data.default_from_email,
        "max_per_second": data.max_per_second,
        "max_per_hour": data.max_per_hour,
        "max_connections": data.max_connections,
        "bounce_address": data.bounce_address,
        "soft_bounce_limit": data.soft_bounce_limit,
    }
    for name in _KEPT_WHEN_LEFT_OUT:
        if current is not None and name not in data.model_fields_set:
            values[name] = getattr(current, name)
    _check_bounce_address_free(session, org_id, values["bounce_address"])
    before = audit.snapshot(current)
    row = EmailConfigRepository(session, org_id).current_or_new(EmailConfig(**values))
    moved = any(getattr(row, name) != values[name] for name in _DESTINATION)
    for name, value in values.items():
        setattr(row, name, value)
    if data.password is None and moved:
        row.password_sealed = None
    elif data.password is not None:
        row.password_sealed = smtp_box(settings).seal(data.password) if data.password else None
    inbound.apply(session, settings, row, data)
    session.flush()
    audit.record(
        session,
        actor,
        "email_config.saved",
        target="email configuration",
        details=audit.changes(before, row),
    )
    return row


def _check_bounce_address_free(
    session: Session, org_id: uuid.UUID, bounce_address: str | None
) -> None:
    """One org per bounce address: the receiver tells orgs' reports apart by it."""
    if bounce_address is None:
        return
    owner = bounce_addresses(session).get(bounce_address)
    if owner is not None and owner != org_id:
        raise Conflict(
            "This bounce address is already in use: choose another one.",
            code="bounce_address_taken",
            details=[{"field": "bounceAddress", "message": "already in use"}],
        )


# What a stored password is bound to: change any of them and it is no longer sent anywhere.
_DESTINATION = ("host", "port", "username", "security")
# As the mailbox and the webhook keys (herald.mailconfig.inbound): a client that knows
# nothing of bounces or of the relay's limits does not unset them (null still clears a limit).
_KEPT_WHEN_LEFT_OUT = (
    "max_per_second",
    "max_per_hour",
    "max_connections",
    "bounce_address",
    "soft_bounce_limit",
)


@dataclass(frozen=True)
class SendingDefaults:
    from_name: str
    from_email: str


def sending_defaults(session: Session, org_id: uuid.UUID) -> SendingDefaults | None:
    """The org's default sender, or None while email is not configured."""
    row = get_config(session, org_id)
    if row is None or not row.host:
        return None
    return SendingDefaults(row.default_from_name, row.default_from_email)


def load_mail_account(session: Session, settings: Settings, org_id: uuid.UUID) -> MailAccount:
    """The org's SMTP account for sending; 409 when there is none or its password is unreadable."""
    row = get_config(session, org_id)
    if row is None:
        raise Conflict(
            "Email is not configured for your organisation yet: "
            "an ADMIN sets it under Settings → Email configuration.",
            code="smtp_not_configured",
        )
    return MailAccount(
        smtp=SmtpSettings(
            host=row.host,
            port=row.port,
            security=parse_security(row.security),
            username=row.username,
            password=_open_password(settings, row),
            verify_tls=settings.smtp_verify_tls,
            allowed_networks=settings.smtp_networks,
        ),
        from_name=row.default_from_name,
        from_email=row.default_from_email,
        limits=RelayLimits(row.max_per_second, row.max_per_hour, row.max_connections),
        bounce_address=row.bounce_address,
    )


def _open_password(settings: Settings, row: EmailConfig) -> str:
    if row.password_sealed is None:
        return ""
    try:
        return smtp_box(settings).open(row.password_sealed)
    except ValueError:
        raise Conflict(
            "The stored SMTP password cannot be decrypted (HERALD_SECRET_KEY was probably "
            "changed). Enter the password again under Settings → Email configuration.",
            code="smtp_password_unreadable",
        ) from None


def parse_security(value: str) -> Security:
    for mode in SECURITY_MODES:
        if value == mode:
            return mode
    raise ValueError(f"unknown SMTP security mode {value!r} stored in email_configs")
