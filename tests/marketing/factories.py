"""Marketing API tests' arrangements: logged-in callers, campaigns made over the API, and
campaigns, sends and email settings written straight to the database (no worker runs in
these tests, so whatever a worker would have done is inserted as it would have left it)."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from sqlalchemy import update

from herald.db import unit_of_work, utcnow
from herald.mailconfig.models import EmailConfig
from herald.marketing.models import Campaign, MarketingSend
from herald.runtime import Runtime
from tests.conftest import free_port
from tests.crm.factories import make_contact
from tests.orgs.factories import login, make_org, make_user

# Orgs made here during a test: their QUEUED sends are retired afterwards (retire_queue) so
# that a worker started by a later test never picks them up.
_ORGS: set[uuid.UUID] = set()


# The engagement figures of stats (issue #17) of a campaign nobody has opened or clicked.
NO_ENGAGEMENT = {
    "humanOpens": 0, "machineOpens": 0, "humanOpenRate": 0, "clicks": 0, "machineClicks": 0,
    "clickRate": 0, "unsubscribes": 0,
}  # fmt: skip


@dataclass
class Caller:
    org_id: uuid.UUID
    headers: dict[str, str]


def caller(
    client: httpx.Client,
    runtime: Runtime,
    role: str = "ADMIN",
    *,
    org_id: uuid.UUID | None = None,
    features: tuple[str, ...] = ("marketing",),
) -> Caller:
    """A user of ``role`` in ``org_id`` (by default a fresh org with ``features``), logged in."""
    org_id = org_id or make_org(runtime, features).id
    _ORGS.add(org_id)
    return Caller(org_id, login(client, make_user(runtime, org_id, role)))


def campaign_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Spring news",
        "fromName": "Acme Marketing",
        "fromEmail": "news@acme.example.com",
        "subject": "Hello {{firstName|there}}",
        "htmlBody": '<p>Hi {{firstName}}</p><p><a href="{{unsubscribeUrl}}">Unsubscribe</a></p>',
        "textBody": "Hi {{firstName}}\nUnsubscribe: {{unsubscribeUrl}}",
        "audience": {"type": "ALL"},
    }
    body.update(overrides)
    return body


def create_campaign(client: httpx.Client, who: Caller, **overrides: Any) -> dict[str, Any]:
    """A DRAFT made over the API; returns its JSON."""
    response = client.post(
        "/api/marketing/campaigns", json=campaign_body(**overrides), headers=who.headers
    )
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def configure_email(runtime: Runtime, org_id: uuid.UUID) -> None:
    """SMTP settings aimed at a loopback port nobody listens on: enough for a launch."""
    with unit_of_work(runtime.sessions) as session:
        session.add(
            EmailConfig(
                org_id=org_id,
                host="127.0.0.1",
                port=free_port(),
                security="none",
                default_from_name="Herald Tests",
                default_from_email="sender@example.com",
            )
        )


def add_contact(
    runtime: Runtime,
    org_id: uuid.UUID,
    email: str | None,
    *,
    status: str = "LEAD",
    opted_out: bool = False,
    first_name: str = "Ada",
    last_name: str = "Lovelace",
) -> uuid.UUID:
    contact = make_contact(
        runtime,
        org_id,
        email,
        status=status,
        marketing_opt_out=opted_out,
        first_name=first_name,
        last_name=last_name,
    )
    return contact.id


def insert_campaign(
    runtime: Runtime, org_id: uuid.UUID, status: str = "SENT", **values: Any
) -> uuid.UUID:
    """A campaign as the launch and the workers would have left it (counters included)."""
    now = utcnow()
    fields: dict[str, Any] = {
        "name": "Launched news",
        "from_name": "Acme",
        "from_email": "news@acme.example.com",
        "subject": "Hello {{firstName}}",
        "html_body": "<p>Hi {{firstName}}</p>",
        "text_body": "Hi {{firstName}}",
        "audience": {"type": "STATUS", "statuses": ["LEAD"]},
        "launched_at": None if status == "DRAFT" else now,
        "completed_at": now if status == "SENT" else None,
    }
    fields.update(values)
    with unit_of_work(runtime.sessions) as session:
        campaign = Campaign(org_id=org_id, status=status, **fields)
        session.add(campaign)
        session.flush()
        return campaign.id


def insert_sends(
    runtime: Runtime, org_id: uuid.UUID, campaign_id: uuid.UUID, rows: list[dict[str, Any]]
) -> list[int]:
    """Sends with the given columns (email required); their ids, in order."""
    now = utcnow()
    with unit_of_work(runtime.sessions) as session:
        sends = [
            MarketingSend(
                org_id=org_id,
                campaign_id=campaign_id,
                token=secrets.token_hex(32),
                **{"first_name": "Ada", "last_name": "Lovelace", "next_attempt_at": now, **row},
            )
            for row in rows
        ]
        session.add_all(sends)
        session.flush()
        return [s.id for s in sends]


RowT = TypeVar("RowT")


def detached_row(runtime: Runtime, model: type[RowT], key: Any) -> RowT:
    """A row as it is now, read in a transaction of its own and usable after it."""
    with unit_of_work(runtime.sessions, write=False) as session:
        row = session.get(model, key)
        assert row is not None
        session.expunge(row)
        return row


def get_send(runtime: Runtime, send_id: int) -> MarketingSend:
    return detached_row(runtime, MarketingSend, send_id)


def get_campaign_row(runtime: Runtime, campaign_id: uuid.UUID) -> Campaign:
    return detached_row(runtime, Campaign, campaign_id)


def retire_queue(runtime: Runtime) -> None:
    """Fail the still-QUEUED sends of the orgs made here, so no later worker claims them."""
    if not _ORGS:
        return
    with unit_of_work(runtime.sessions) as session:
        session.execute(
            update(MarketingSend)
            .where(MarketingSend.org_id.in_(list(_ORGS)), MarketingSend.status == "QUEUED")
            .values(status="FAILED", error="Retired by the test that made it.")
        )
        # as the worker would have counted them: nothing is left to go for these campaigns
        session.execute(
            update(Campaign)
            .where(Campaign.org_id.in_(list(_ORGS)))
            .values(
                failed=Campaign.recipients
                - Campaign.delivered
                - Campaign.unknown
                - Campaign.cancelled
            )
        )
    _ORGS.clear()


def ago(seconds: float) -> dt.datetime:
    return utcnow() - dt.timedelta(seconds=seconds)


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The contract's error shape with this status and code; returns the error object."""
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code, error
    assert error["message"]
    return error


def assert_field_error(
    response: httpx.Response, field: str, code: str = "validation_error"
) -> dict[str, Any]:
    """A 422 naming ``field`` among its details."""
    error = assert_error(response, 422, code)
    assert field in [d["field"] for d in error["details"]], error
    return error
