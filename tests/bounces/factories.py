"""Arrangements for the bounce tests: an org with a bounce address, contacts, and campaigns
whose sends were delivered (as the workers leave them), and reports about those sends."""

from __future__ import annotations

import smtplib
import uuid
from dataclasses import dataclass

from sqlalchemy import select

from herald.bounces.ingest import Incoming, Ingested, ingest
from herald.bounces.models import BounceReport, Source
from herald.bounces.receiver import InboundThread
from herald.crm.models import Contact
from herald.db import unit_of_work, utcnow
from herald.dev.bouncer import HARD, SOFT, Failure, delivery_status_notification
from herald.mail.sendref import SendRefKeys, make_message_id, return_path
from herald.mailconfig.models import EmailConfig
from herald.runtime import Runtime
from tests.crm.factories import make_contact
from tests.marketing.factories import detached_row, insert_campaign, insert_sends
from tests.orgs.factories import make_org


@dataclass
class BounceOrg:
    org_id: uuid.UUID
    bounce_address: str

    def keys(self, runtime: Runtime) -> SendRefKeys:
        return SendRefKeys.from_secret(runtime.settings.secret_key)


def bounce_org(runtime: Runtime, soft_bounce_limit: int = 3) -> BounceOrg:
    org = make_org(runtime)
    address = f"b{uuid.uuid4().hex[:10]}@bounces.example.com"
    with unit_of_work(runtime.sessions) as session:
        session.add(
            EmailConfig(
                org_id=org.id,
                host="127.0.0.1",
                port=25,
                security="none",
                default_from_email="news@acme.example.com",
                bounce_address=address,
                soft_bounce_limit=soft_bounce_limit,
            )
        )
    return BounceOrg(org.id, address)


def contact(runtime: Runtime, org: BounceOrg, email: str | None = None) -> Contact:
    return make_contact(runtime, org.org_id, email or f"c-{uuid.uuid4().hex[:8]}@example.net")


def delivered_campaign(
    runtime: Runtime, org: BounceOrg, contacts: list[Contact], status: str = "SENT"
) -> tuple[uuid.UUID, list[int]]:
    """A campaign that delivered one send to each contact; (its id, the send ids)."""
    campaign_id = insert_campaign(
        runtime, org.org_id, status, recipients=len(contacts), delivered=len(contacts)
    )
    rows = [
        {
            "email": c.email,
            "contact_id": c.id,
            "status": "DELIVERED",
            "attempts": 1,
            "delivered_at": utcnow(),
        }
        for c in contacts
    ]
    return campaign_id, insert_sends(runtime, org.org_id, campaign_id, rows)


def dsn_for(
    runtime: Runtime,
    org: BounceOrg,
    send_id: int,
    recipient: str,
    failure: Failure = HARD,
    *,
    message_id: str | None = None,
) -> bytes:
    """A Postfix-style DSN about the message of ``send_id`` (its Message-ID quoted)."""
    keys = org.keys(runtime)
    mid = message_id or make_message_id(keys.message_id, send_id, "acme.example.com")
    original = f"From: news@acme.example.com\r\nTo: {recipient}\r\nMessage-ID: {mid}\r\n\r\n"
    return delivery_status_notification(
        return_path=return_path(keys.tag, org.bounce_address, send_id),
        recipient=recipient,
        failure=failure,
        original=original.encode(),
    )


def receive(
    runtime: Runtime,
    org: BounceOrg,
    raw: bytes,
    *,
    envelope_to: str | None = None,
    source: Source = Source.SMTP,
) -> Ingested:
    """``raw`` as the receiver ingests it, committed."""
    with unit_of_work(runtime.sessions) as session:
        incoming = Incoming(source, raw, envelope_to=envelope_to or org.bounce_address)
        ingested = ingest(session, org.keys(runtime), incoming, org.org_id)
        session.expunge_all()  # what a repeat returns was read from the database
        return ingested


def bounce(
    runtime: Runtime, org: BounceOrg, send_id: int, recipient: str, failure: Failure = HARD
) -> Ingested:
    """A DSN about ``send_id``, received at its VERP return path."""
    raw = dsn_for(runtime, org, send_id, recipient, failure)
    return receive(runtime, org, raw, envelope_to=tagged(runtime, org, send_id))


def tagged(runtime: Runtime, org: BounceOrg, send_id: int) -> str:
    return return_path(org.keys(runtime).tag, org.bounce_address, send_id)


def smtp(receiver: InboundThread) -> smtplib.SMTP:
    """A client of the bounce receiver, greeted as a mail server."""
    client = smtplib.SMTP("127.0.0.1", receiver.port, timeout=30)
    client.ehlo("mx.sender.example")
    return client


def reports_of(runtime: Runtime, org: BounceOrg) -> list[BounceReport]:
    with unit_of_work(runtime.sessions, write=False) as session:
        rows = list(
            session.scalars(
                select(BounceReport)
                .where(BounceReport.org_id == org.org_id)
                .order_by(BounceReport.id)
            )
        )
        for row in rows:
            session.expunge(row)
        return rows


def contact_row(runtime: Runtime, contact_id: uuid.UUID) -> Contact:
    return detached_row(runtime, Contact, contact_id)


__all__ = ["HARD", "SOFT"]
