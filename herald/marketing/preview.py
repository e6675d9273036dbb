"""A campaign as one sample recipient sees it: the HTML for the page's sandboxed preview, and
the "Send test" message sent through the org's SMTP settings."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage

from email_validator import EmailNotValidError, validate_email
from sqlalchemy.orm import Session

from herald.crm.models import Contact
from herald.errors import ValidationFailed
from herald.mail import testsend
from herald.mail.compose import (
    CampaignMessage,
    InvalidAddress,
    ListHeaders,
    Recipient,
    smtp_address,
)
from herald.mail.mailer import MailerFactory
from herald.mail.pool import ConnectionPool
from herald.mail.smtp import SmtpSettings
from herald.mailconfig.service import load_mail_account
from herald.marketing import service
from herald.marketing.audience import eligible_contacts
from herald.marketing.models import Campaign
from herald.orgs.models import Org
from herald.settings import Settings

# Not secrets: the send tokens of messages that are no send (unknown to /u/ and /t/).
PREVIEW_TOKEN = "preview"  # noqa: S105
TEST_TOKEN = "test"  # noqa: S105
PLACEHOLDER_SENDER = "sender@example.com"
TEST_SUBJECT_PREFIX = "[Test] "
MAX_TEST_ADDRESSES = 5

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
    list_headers: ListHeaders | None = None,
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
            # links as written: a preview or test message is no send, so its /c/ links
            # would lead nowhere; the person testing should land where the link points
            track_opens=campaign.track_opens,
            track_clicks=False,
            list_headers=list_headers,
        )
    except InvalidAddress as exc:
        raise ValidationFailed(
            f"The sender address cannot be used: {exc}", field="fromEmail"
        ) from None


def list_headers(session: Session, campaign: Campaign) -> ListHeaders:
    """The campaign's Feedback-ID and List-Id, as the worker sends them."""
    org = session.get(Org, campaign.org_id)
    return ListHeaders(str(campaign.id), str(campaign.org_id), org.name if org else "")


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
    """One address a test goes to, checked like any address Herald sends to."""
    address = value.strip()
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValidationFailed(f"Enter one valid email address: {exc}", field="to") from None
    return address


@dataclass(frozen=True)
class CampaignTest:
    """A campaign's test messages, rendered and ready to go (no database needed to send)."""

    smtp: SmtpSettings
    sender: str
    messages: tuple[tuple[str, bytes], ...]  # (address, the whole message)


@dataclass(frozen=True)
class TestAnswer:
    to: str
    ok: bool
    code: int | None
    message: str


def prepare_test_send(
    session: Session,
    settings: Settings,
    org_id: uuid.UUID,
    campaign_id: str,
    to: Sequence[str],
) -> CampaignTest:
    """The campaign as its first eligible contact would get it, subject prefixed "[Test] ",
    addressed to each of ``to``. Reads only: it is counted nowhere. 404 for another org's
    campaign, 422 for a bad address or sender, 409 without email configuration, 429 once the
    org has used its test messages for the minute."""
    campaign = service.get_campaign(session, org_id, campaign_id)
    addresses = list(dict.fromkeys(checked_test_address(value) for value in to))
    if not addresses:
        raise ValidationFailed("Enter at least one address to send the test to.", field="to")
    if len(addresses) > MAX_TEST_ADDRESSES:
        raise ValidationFailed(
            f"A test goes to at most {MAX_TEST_ADDRESSES} addresses.", field="to"
        )
    account = load_mail_account(session, settings, org_id)
    message = compile_message(
        campaign,
        settings.base_url,
        from_name=account.from_name,
        from_email=account.from_email,
        subject_prefix=TEST_SUBJECT_PREFIX,
        list_headers=list_headers(session, campaign),
    )
    sample = sample_recipient(session, org_id, campaign, TEST_TOKEN)
    rendered = []
    for address in addresses:
        try:
            raw = message.render(dataclasses.replace(sample, email=address))
            rendered.append((smtp_address(address), raw))
        except InvalidAddress as exc:
            raise ValidationFailed(f"Enter one valid email address: {exc}", field="to") from None
    testsend.test_message_limit.take(org_id, settings.smtp_test_messages_per_minute, len(rendered))
    return CampaignTest(account.smtp, message.envelope_from(), tuple(rendered))


async def send_test(
    test: CampaignTest, mailer_factory: MailerFactory = ConnectionPool
) -> list[TestAnswer]:
    """Send each test message on its own connection; the server's answer per address.

    HostNotAllowed (422) when the host now resolves to a refused address.
    """
    answers = []
    for to, raw in test.messages:
        try:
            reply = await testsend.deliver(
                test.smtp, test.sender, to, raw, mailer_factory=mailer_factory
            )
        except testsend.SmtpFailed as exc:
            answers.append(TestAnswer(to, False, exc.details["smtpCode"], exc.message))
            continue
        answers.append(TestAnswer(to, True, reply.code, reply.text))
    return answers
