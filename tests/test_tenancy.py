"""Tenant isolation, checked over every route of the app: another org's ids answer 404 exactly
like ids that do not exist, and every non-public route needs a login."""

from __future__ import annotations

import datetime as dt
import re
import secrets
import uuid
from collections.abc import Callable

import httpx
import pytest

from herald.db import unit_of_work
from herald.marketing.models import Campaign, MarketingSend
from herald.runtime import Runtime
from tests.conftest import free_port
from tests.orgs.factories import login, make_org, make_user

PUBLIC = {
    ("POST", "/api/auth/login"),
    ("POST", "/api/auth/refresh"),
    ("POST", "/api/auth/logout"),
    ("GET", "/healthz"),
}

# A valid body for each write route that takes an id, so that validation cannot answer first.
BODIES: dict[tuple[str, str], dict] = {
    ("PATCH", "/api/crm/contacts/{contact_id}"): {"firstName": "Mallory"},
    ("PATCH", "/api/settings/users/{user_id}"): {"role": "USER"},
    ("PATCH", "/api/marketing/campaigns/{campaign_id}"): {"name": "Mallory"},
    ("PUT", "/api/marketing/campaigns/{campaign_id}"): {"name": "Mallory", "subject": "Hi"},
    ("POST", "/api/marketing/campaigns/{campaign_id}/test"): {"to": ["mallory@victim.example"]},
    ("POST", "/api/marketing/campaigns/{campaign_id}/schedule"): {
        "at": (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).isoformat()
    },
}
# Routes that change only a campaign in another status than a new DRAFT: the victim's own
# call finds its campaign and answers 409.
NOT_FOR_A_DRAFT = {
    ("POST", f"/api/marketing/campaigns/{{campaign_id}}/{action}")
    for action in ("unschedule", "pause", "resume", "cancel")
}


def make_contact(client: httpx.Client, headers: dict[str, str], _runtime: Runtime) -> str:
    response = client.post(
        "/api/crm/contacts",
        headers=headers,
        json={"email": f"{uuid.uuid4().hex[:8]}@victim.example", "firstName": "Vic"},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def make_org_user(client: httpx.Client, headers: dict[str, str], _runtime: Runtime) -> str:
    response = client.post(
        "/api/settings/users",
        headers=headers,
        json={
            "email": f"{uuid.uuid4().hex[:8]}@victim.example",
            "password": "p" * 12,
            "role": "USER",
        },
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def make_campaign(client: httpx.Client, headers: dict[str, str], _runtime: Runtime) -> str:
    """A DRAFT whose audience (INACTIVE contacts) is empty: launching it queues nothing."""
    response = client.post(
        "/api/marketing/campaigns",
        headers=headers,
        json={
            "name": "Victim news",
            "subject": "Hello",
            "audience": {"type": "STATUS", "statuses": ["INACTIVE"]},
        },
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def make_failed_send(client: httpx.Client, headers: dict[str, str], runtime: Runtime) -> str:
    """A FAILED (so resendable) send of a SENT campaign, as a worker would have left it."""
    campaign_id = uuid.UUID(make_campaign(client, headers, runtime))
    with unit_of_work(runtime.sessions) as session:
        campaign = session.get(Campaign, campaign_id)
        assert campaign is not None
        campaign.status, campaign.recipients, campaign.failed = "SENT", 1, 1
        send = MarketingSend(
            org_id=campaign.org_id,
            campaign_id=campaign.id,
            email="send@victim.example",
            token=secrets.token_hex(32),
            status="FAILED",
            attempts=1,
            error="550 5.1.1 No such user",
        )
        session.add(send)
        session.flush()
        send_id = send.id
    return str(send_id)


def make_bounce_report(client: httpx.Client, headers: dict[str, str], _runtime: Runtime) -> str:
    """A bounce report added by API (about no send: recorded as unmatched)."""
    response = client.post(
        "/api/marketing/bounces",
        headers=headers,
        json={"email": f"{uuid.uuid4().hex[:8]}@victim.example", "type": "hard"},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


# path parameter name -> how the victim org creates one
MAKERS: dict[str, Callable[[httpx.Client, dict[str, str], Runtime], str]] = {
    "contact_id": make_contact,
    "user_id": make_org_user,
    "campaign_id": make_campaign,
    "send_id": make_failed_send,
    "report_id": make_bounce_report,
}


def api_operations(client: httpx.Client) -> list[tuple[str, str]]:
    spec = client.get("/api/openapi.json").json()
    return [
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    ]


def test_every_non_public_route_needs_a_login(client):
    operations = api_operations(client)
    assert len(operations) > 10
    for method, path in operations:
        if (method, path) in PUBLIC:
            continue
        url = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
        response = client.request(method, url)
        assert response.status_code == 401, (method, path, response.text)
        assert response.json()["error"]["code"] == "not_authenticated"


@pytest.fixture(scope="module")
def orgs(live_server, runtime):
    with httpx.Client(base_url=live_server.url) as c:
        victim = login(c, make_user(runtime, make_org(runtime), "ADMIN"))
        intruder = login(c, make_user(runtime, make_org(runtime), "ADMIN"))
        # the victim can launch its campaigns (to nobody, so nothing ever dials this port)
        smtp = {
            "host": "127.0.0.1",
            "port": free_port(),
            "security": "none",
            "username": "",
            "defaultFromName": "Victim",
            "defaultFromEmail": "news@victim.example.com",
        }
        assert c.put("/api/settings/email", headers=victim, json=smtp).status_code == 200
        yield victim, intruder


def test_another_orgs_ids_answer_404_exactly_like_missing_ones(client, orgs, runtime):
    victim, intruder = orgs
    checked = 0
    for method, path in api_operations(client):
        params = re.findall(r"\{([^}]+)\}", path)
        if not params:
            continue
        missing = [p for p in params if p not in MAKERS]
        assert not missing, f"add a maker for {missing} so {method} {path} is checked"
        victim_ids = {p: MAKERS[p](client, victim, runtime) for p in params}
        body = BODIES.get((method, path))
        foreign = client.request(method, path.format(**victim_ids), headers=intruder, json=body)
        absent = client.request(
            method, path.format(**{p: uuid.uuid4() for p in params}), headers=intruder, json=body
        )
        assert foreign.status_code == 404, (method, path, foreign.text)
        assert foreign.json() == absent.json(), (method, path)
        # and the victim's own data is untouched and still visible to its org
        still = client.request(method, path.format(**victim_ids), headers=victim, json=body)
        wanted = 409 if (method, path) in NOT_FOR_A_DRAFT else 200
        assert still.status_code < 400 or still.status_code == wanted, (method, path, still.text)
        checked += 1
    assert checked >= 3


# org-wide lists without an id in the path: each shows the victim's new user (its email is
# at victim.example), and none shows it to another org
ORG_LISTS = ("/api/settings/audit", "/api/settings/users")


def test_org_wide_lists_show_only_the_callers_org(client, orgs, runtime):
    victim, intruder = orgs
    make_org_user(client, victim, runtime)
    for path in ORG_LISTS:
        own = client.get(path, headers=victim, params={"pageSize": 500})
        assert own.status_code == 200, (path, own.text)
        assert "@victim.example" in own.text, path
        seen = client.get(path, headers=intruder, params={"pageSize": 500})
        assert seen.status_code == 200, (path, seen.text)
        assert seen.json()["total"] >= 1 and "@victim.example" not in seen.text, path
