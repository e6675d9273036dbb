"""A campaign as one sample recipient sees it: the HTML for the page's sandboxed preview, and
the "Send test" message sent through the org's SMTP settings."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from email import message_from_bytes, policy
from email.message import EmailMessage

from email_validator import EmailNotValidError, validate_email
from sqlalchemy.orm import Session

from herald.crm.models import Contact
from herald.errors import ValidationFailed
from herald.mailconfig.account import MailAccount
from herald.mailconfig.testmail import TIMEOUT_SECONDS, describe_failure
from herald.marketing.audience import eligible_contacts
from herald.marketing.compose import CampaignMessage, InvalidAddress, Recipient
from herald.marketing.models import Campaign
from herald.marketing.transport import ConnectionLost, Reply, SmtpConnection, SmtpError

# Not secrets: the send tokens of messages that are no send (unknown to /u/ and /t/).
PREVIEW_TOKEN = "preview"  # noqa: S105
TEST_TOKEN = "test"  # noqa: S105
PLACEHOLDER_SENDER = "sender@example.com"
TEST_SUBJECT_PREFIX = "[Test] "

# The preview answers with its own policy: no script, no plugin, no request but images, and
# a sandbox even when opened outside its iframe.
PREVIEW_CSP = "default-src 'none'; img-src data: https: http:; style-src 'unsafe-inline'; sandbox"


def sample_recipient(
    session: Session, org_id: uuid.UUID, campaign: Campaign, token: str = PREVIEW_TOKEN
) -> Recipient:
    """The first contact the campaign's audience would mail, or a made-up Alex Example."""
    stmt = eligible_contacts(org_id, campaign.audience).order_by(Contact.created_at, Contact.id)
    contact = session.scalars(stmt.limit(1)).first()
    if contact is None or not contact.email:
        return Recipient("alex@example.com", "Alex", "Example", "Example Ltd", token)
    return Recipient(
        contact.email,
        contact.first_name or "",
        contact.last_name or "",
        contact.company_name or "",
        token,
    )


def compile_message(
    campaign: Campaign,
    base_url: str,
    *,
    from_name: str = "",
    from_email: str = "",
    subject_prefix: str = "",
) -> CampaignMessage:
    """The campaign compiled for sending; 422 naming fromEmail for an unusable sender."""
    try:
        return CampaignMessage(
            subject=subject_prefix + campaign.subject,
            html_body=campaign.html_body,
            text_body=campaign.text_body,
            from_name=campaign.from_name or from_name,
            from_email=campaign.from_email or from_email or PLACEHOLDER_SENDER,
            base_url=base_url,
        )
    except InvalidAddress as exc:
        raise ValidationFailed(
            f"The sender address cannot be used: {exc}", field="fromEmail"
        ) from None


def preview_html(session: Session, org_id: uuid.UUID, campaign: Campaign, base_url: str) -> str:
    """The HTML part exactly as the sample recipient would receive it (the sender does not
    show in it, so a placeholder one is used)."""
    message = compile_message(campaign, base_url, from_email=PLACEHOLDER_SENDER)
    raw = message.render(sample_recipient(session, org_id, campaign))
    parsed = message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    part = parsed.get_body(preferencelist=("html",))
    return str(part.get_content()) if part is not None else ""


def checked_test_address(value: str) -> str:
    """The one address a test goes to, checked like any address Herald sends to."""
    address = value.strip()
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValidationFailed(f"Enter one valid email address: {exc}", field="to") from None
    return address


async def _deliver(account: MailAccount, sender: str, to: str, raw: bytes) -> Reply:
    smtp = dataclasses.replace(account.smtp, timeout=TIMEOUT_SECONDS)
    try:
        conn = await SmtpConnection.open(smtp)
        try:
            return await conn.send(sender, to, raw)
        finally:
            await conn.close()
    except (SmtpError, ConnectionLost, OSError, TimeoutError, EOFError) as exc:
        raise describe_failure(exc, smtp, sender, to) from exc


def send_test(
    message: CampaignMessage, recipient: Recipient, account: MailAccount, to: str
) -> Reply:
    """Send the sample recipient's message to ``to``; the server's answer, or SmtpFailed (502).

    Blocking: call it from a worker thread (a sync page handler), never from the event loop.
    """
    try:
        raw = message.render(dataclasses.replace(recipient, email=to, token=TEST_TOKEN))
    except InvalidAddress as exc:
        raise ValidationFailed(f"Enter one valid email address: {exc}", field="to") from None
    return asyncio.run(_deliver(account, message.envelope_from(), to, raw))
