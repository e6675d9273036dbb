"""A contact who opts out while the campaign is SENDING gets nothing more from it, whether
by the unsubscribe link (POST /u/{token}) or by a CRM user (PATCH /api/crm/contacts/{id}).

A real worker sends over SMTP to a loopback server; the first message of the first chunk
is held at the server for a few seconds, so the opt-outs land while the worker is busy and
the quitters' sends (in a later chunk) are still QUEUED. Per docs/guarantees.md the check
happens where a send is marked in flight: such a send ends FAILED with the reason, and the
campaign ends SENT. tests/marketing/test_sending.py shows the same for an opt-out written
to the database before the worker starts.
"""

from __future__ import annotations

from sqlalchemy import select

from herald.crm.models import Contact
from herald.db import unit_of_work
from tests.marketing.engine import (
    InProcessWorker,
    arrange,
    assert_counters_match_sends,
    campaign,
    fast_runtime,
    sends,
    wait_for_status,
    wait_until,
)
from tests.orgs.factories import login, make_user
from tests.smtp_server import slow

RECIPIENTS = 60  # three chunks of 20


def contact_id(runtime, org_id, email: str) -> str:
    with unit_of_work(runtime.sessions, write=False) as session:
        found = session.scalar(
            select(Contact.id).where(Contact.org_id == org_id, Contact.email == email)
        )
    return str(found)


def test_opting_out_while_sending_stops_the_remaining_message(client, runtime, smtp_server):
    rt = fast_runtime(runtime, lease_seconds=30)
    arranged = arrange(rt, smtp_server, RECIPIENTS)
    assert campaign(rt, arranged.campaign_id).status == "SENDING"
    queue = sends(rt, arranged.campaign_id)
    smtp_server.script(queue[0].email, slow(3.0))  # holds the first chunk at the server
    by_link, by_crm = queue[-1], queue[-2]  # in the last chunk
    headers = login(client, make_user(rt, arranged.org_id, "ADMIN"))

    with InProcessWorker(rt):
        wait_until(lambda: any(s.status == "SENDING" for s in sends(rt, arranged.campaign_id)), 10)
        unsubscribed = client.post(f"/u/{by_link.token}", data={"List-Unsubscribe": "One-Click"})
        assert unsubscribed.status_code == 200
        patched = client.patch(
            f"/api/crm/contacts/{contact_id(rt, arranged.org_id, by_crm.email)}",
            headers=headers,
            json={"marketingOptOut": True},
        )
        assert patched.status_code == 200 and patched.json()["marketingOptOut"] is True
        # the precondition: both opt-outs are committed while their sends still wait
        waiting = {s.id: s.status for s in sends(rt, arranged.campaign_id)}
        assert waiting[by_link.id] == waiting[by_crm.id] == "QUEUED"
        assert campaign(rt, arranged.campaign_id).status == "SENDING"
        wait_for_status(rt, arranged.campaign_id, "SENT", timeout=60)

    received = [address.lower() for m in smtp_server.messages for address in m.rcpt_tos]
    assert by_link.email.lower() not in received
    assert by_crm.email.lower() not in received
    assert len(received) == len(set(received)) == RECIPIENTS - 2
    final = {s.id: s for s in sends(rt, arranged.campaign_id)}
    for quitter in (by_link, by_crm):
        assert final[quitter.id].status == "FAILED"
        assert "opted out" in (final[quitter.id].error or "")
    assert sum(s.status == "DELIVERED" for s in final.values()) == RECIPIENTS - 2
    done = campaign(rt, arranged.campaign_id)
    assert (done.status, done.delivered, done.failed) == ("SENT", RECIPIENTS - 2, 2)
    assert_counters_match_sends(rt, arranged.campaign_id)
