"""The dev Inbox (HERALD_ENV=dev) shows a viewer only their own org's captured campaign mail
(known by the send's unsubscribe token) and mail of no org; another org's messages are
neither listed, nor readable by id, nor deleted by "Delete all"."""

from __future__ import annotations

from email.message import EmailMessage

import httpx
from sqlalchemy import select

from herald.db import unit_of_work
from herald.dev.mailbox import Mailbox
from herald.marketing.models import MarketingSend
from tests.marketing.engine import add_contacts
from tests.marketing.factories import caller, configure_email

CSRF = "inbox-scope-csrf"


def captured(box: Mailbox, subject: str, token: str | None) -> str:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = (
        "shop@example.com",
        "a@example.com",
        subject,
    )
    if token:
        message["List-Unsubscribe"] = f"<https://herald.test/u/{token}>"
    message.set_content("Hello")
    return box.save(message.as_bytes())


def launched_token(client: httpx.Client, runtime, who) -> str:
    add_contacts(runtime, who.org_id, [f"{who.org_id.hex[:8]}@example.com"])
    configure_email(runtime, who.org_id)
    made = client.post(
        "/api/marketing/campaigns", json={"name": "N", "subject": "S"}, headers=who.headers
    ).json()
    assert (
        client.post(
            f"/api/marketing/campaigns/{made['id']}/launch", headers=who.headers
        ).status_code
        == 202
    )
    with unit_of_work(runtime.sessions, write=False) as session:
        return session.scalars(
            select(MarketingSend.token).where(MarketingSend.org_id == who.org_id)
        ).one()


def test_each_org_sees_only_its_own_mail(start_server, runtime, tmp_path, fresh_queue):
    server = start_server(env="dev", dev_dir=tmp_path)
    box = Mailbox(tmp_path / "mailbox")
    with httpx.Client(base_url=server.url) as client:
        mine, theirs = caller(client, runtime), caller(client, runtime)
        own = captured(box, "Ours", launched_token(client, runtime, mine))
        other = captured(box, "Theirs", launched_token(client, runtime, theirs))
        note = captured(box, "A note of no org", None)
        token = mine.headers["Authorization"].split(" ", 1)[1]
        cookies = {"Cookie": f"herald_access={token}; herald_csrf={CSRF}", "Accept": "text/html"}

        listed = client.get("/dev/inbox", headers=cookies)
        assert listed.status_code == 200
        assert "Ours" in listed.text and "A note of no org" in listed.text
        assert "Theirs" not in listed.text
        assert client.get(f"/dev/inbox/{own}", headers=cookies).status_code == 200
        assert client.get(f"/dev/inbox/{note}", headers=cookies).status_code == 200
        for suffix in ("", "/html", "/raw"):
            assert client.get(f"/dev/inbox/{other}{suffix}", headers=cookies).status_code == 404

        cleared = client.post("/dev/inbox/clear", data={"csrf_token": CSRF}, headers=cookies)
        assert cleared.status_code == 303
        assert box.ids() == [other]
