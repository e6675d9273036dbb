"""Settings → Email configuration's part for what comes back: the bounce mailbox and the
mail services' keys (form fields to the API body, and what the page shows)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from herald.mailconfig import inbound
from herald.mailconfig.models import EmailConfig
from herald.settings import Settings
from herald.text import is_number


def entered(form: dict[str, str]) -> dict[str, Any]:
    """The form's fields as EmailConfigIn's: no mailbox host removes the mailbox; the
    write-only fields left empty keep what is stored."""
    body: dict[str, Any] = {"sendgridVerificationKey": form["sendgrid_verification_key"]}
    if form["mailgun_clear"]:
        body["mailgunSigningKey"] = ""
    elif form["mailgun_signing_key"]:
        body["mailgunSigningKey"] = form["mailgun_signing_key"]
    host = form["mailbox_host"].strip()
    if not host:
        body["bounceMailbox"] = None
        return body
    port = form["mailbox_port"].strip()
    body["bounceMailbox"] = {
        "host": host,
        "port": int(port) if is_number(port) else (port or None),
        "security": form["mailbox_security"] or "tls",
        "username": form["mailbox_username"],
        "password": form["mailbox_password"] or None,
        "folder": form["mailbox_folder"],
    }
    return body


def shown(form: dict[str, str]) -> dict[str, Any]:
    """What the page shows again after an error (never a password or a key entered)."""
    return {
        "mailbox": {
            "host": form["mailbox_host"],
            "port": form["mailbox_port"],
            "security": form["mailbox_security"] or "tls",
            "username": form["mailbox_username"],
            "folder": form["mailbox_folder"],
        },
        "sendgridVerificationKey": form["sendgrid_verification_key"],
    }


def stored(session: Session, settings: Settings, row: EmailConfig | None) -> dict[str, Any]:
    """The page's view of the stored settings (the API's fields, camelCase)."""
    view = inbound.unconfigured_view() if row is None else inbound.view(session, settings, row)
    mailbox = view["bounce_mailbox"]
    return {
        "mailbox": mailbox.model_dump(by_alias=True) if mailbox else None,
        "webhookUrls": view["webhook_urls"].model_dump() if view["webhook_urls"] else None,
        "sendgridVerificationKey": view["sendgrid_verification_key"],
        "mailgunSigningKeySet": view["mailgun_signing_key_set"],
        "postmarkUsername": view["postmark_username"],
        "postmarkPassword": view["postmark_password"],
    }
