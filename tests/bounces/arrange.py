"""Arrangements for the webhook and mailbox tests: an org with its email configuration
saved through the API, a DELIVERED send to match bounces against, and what they became."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import func, select

from herald.bounces.models import BounceReport
from herald.bounces.webhooks import drain
from herald.bounces.webhooks.models import WebhookDelivery
from herald.crm.models import Contact
from herald.db import unit_of_work, utcnow
from herald.mail.sendref import SendRefKeys, make_message_id
from herald.marketing.models import Campaign, MarketingSend
from herald.runtime import Runtime
from tests.crm.factories import unique_email
from tests.mailconfig.factories import config_body
from tests.marketing.factories import add_contact, insert_campaign, insert_sends
from tests.orgs.factories import login, make_org, make_user


@dataclass
class Org:
    id: uuid.UUID
    headers: dict[str, str]

    def settings(self, client: httpx.Client) -> dict[str, Any]:
        r = client.get("/api/settings/email", headers=self.headers)
        assert r.status_code == 200, r.text
        return r.json()

    def webhook_path(self, client: httpx.Client, provider: str) -> str:
        """The path of the webhook URL Settings shows for ``provider``."""
        url = self.settings(client)["webhookUrls"][provider]
        return str(httpx.URL(url).raw_path.decode())

    def call_webhook(
        self, client: httpx.Client, provider: str, body: bytes, headers: dict[str, str]
    ) -> httpx.Response:
        """A service's call to the org's webhook URL for ``provider``."""
        return client.post(self.webhook_path(client, provider), content=body, headers=headers)

    def save(self, client: httpx.Client, **fields: Any) -> dict[str, Any]:
        r = client.put("/api/settings/email", headers=self.headers, json=config_body(**fields))
        assert r.status_code == 200, r.text
        return r.json()


def org_with_settings(client: httpx.Client, runtime: Runtime, **fields: Any) -> Org:
    """A licensed org whose ADMIN saved the email configuration (plus ``fields``)."""
    org = make_org(runtime)
    found = Org(org.id, login(client, make_user(runtime, org, "ADMIN")))
    found.save(client, **fields)
    return found


@dataclass
class Delivered:
    org_id: uuid.UUID
    campaign_id: uuid.UUID
    send_id: int
    contact_id: uuid.UUID
    email: str

    def message_id(self, runtime: Runtime) -> str:
        """A Message-ID Herald would have given this send's message."""
        keys = SendRefKeys.from_secret(runtime.settings.secret_key)
        return make_message_id(keys.message_id, self.send_id, "acme.example.com")


def delivered_send(runtime: Runtime, org_id: uuid.UUID, email: str | None = None) -> Delivered:
    """A contact and a SENT campaign that was DELIVERED to them, counters included."""
    email = email or unique_email("recipient")
    contact_id = add_contact(runtime, org_id, email)
    campaign_id = insert_campaign(runtime, org_id, recipients=1, delivered=1)
    [send_id] = insert_sends(
        runtime,
        org_id,
        campaign_id,
        [
            {
                "email": email,
                "contact_id": contact_id,
                "status": "DELIVERED",
                "delivered_at": utcnow(),
            }
        ],
    )
    return Delivered(org_id, campaign_id, send_id, contact_id, email)


def ingest_stored(runtime: Runtime) -> int:
    """What a worker does with the stored webhook calls; how many it ingested."""
    keys = SendRefKeys.from_secret(runtime.settings.secret_key)
    total = 0
    while True:
        with unit_of_work(runtime.sessions) as session:
            taken = drain.drain_batch(session, keys)
        total += taken
        if taken == 0:
            return total


def store_call(runtime: Runtime, org_id: uuid.UUID, source: str, body: bytes) -> None:
    """A webhook call as the web app stores it once authenticated, for a worker to ingest."""
    with unit_of_work(runtime.sessions) as session:
        session.add(WebhookDelivery(org_id=org_id, source=source, body=body))


def stored_calls(runtime: Runtime, org_id: uuid.UUID) -> int:
    with unit_of_work(runtime.sessions, write=False) as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(WebhookDelivery)
                .where(WebhookDelivery.org_id == org_id)
            )
            or 0
        )


def reports(runtime: Runtime, org_id: uuid.UUID) -> list[BounceReport]:
    with unit_of_work(runtime.sessions, write=False) as session:
        rows = list(
            session.scalars(
                select(BounceReport).where(BounceReport.org_id == org_id).order_by(BounceReport.id)
            )
        )
        session.expunge_all()
        return rows


@dataclass
class Outcome:
    status: str
    bounce_type: str | None
    complained: bool
    email_status: str
    opted_out: bool
    campaign_bounced: int
    campaign_complaints: int


def outcome(runtime: Runtime, send: Delivered) -> Outcome:
    """What a person looking at the send, its contact and its campaign would see."""
    with unit_of_work(runtime.sessions, write=False) as session:
        row = session.get(MarketingSend, send.send_id)
        contact = session.get(Contact, send.contact_id)
        campaign = session.get(Campaign, send.campaign_id)
        assert row is not None and contact is not None and campaign is not None
        return Outcome(
            status=row.status,
            bounce_type=row.bounce_type,
            complained=row.complained_at is not None,
            email_status=contact.email_status,
            opted_out=contact.marketing_opt_out,
            campaign_bounced=campaign.bounced,
            campaign_complaints=campaign.complaints,
        )


UNTOUCHED = dict(
    status="DELIVERED",
    bounce_type=None,
    complained=False,
    email_status="OK",
    opted_out=False,
    campaign_bounced=0,
    campaign_complaints=0,
)
HARD = {
    **UNTOUCHED,
    "status": "BOUNCED",
    "bounce_type": "hard",
    "email_status": "BOUNCED",
    "campaign_bounced": 1,
}
SOFT = {**UNTOUCHED, "status": "BOUNCED", "bounce_type": "soft", "campaign_bounced": 1}
COMPLAINT = {
    **UNTOUCHED,
    "complained": True,
    "email_status": "COMPLAINED",
    "opted_out": True,
    "campaign_complaints": 1,
}
