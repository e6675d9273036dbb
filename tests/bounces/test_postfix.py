"""A real MTA's bounces: Herald's worker relays a campaign through a private Postfix, whose
next hop refuses two recipients (550 5.1.1, and 452 4.2.2 with a zero queue lifetime);
Postfix's own DSNs, sent to the VERP return paths through Herald's receiver, turn exactly
those sends BOUNCED, hard and soft."""

from __future__ import annotations

import uuid

from sqlalchemy import update

from herald.audit.service import CLI, system_actor
from herald.db import unit_of_work
from herald.mailconfig.models import EmailConfig
from herald.marketing.launch import launch_campaign
from tests.marketing.engine import (
    InProcessWorker,
    add_contacts,
    arrange,
    assert_counters_match_sends,
    campaign,
    fast_runtime,
    sends,
    wait_for_status,
    wait_until,
)
from tests.postfix_server import PrivatePostfix, require_postfix
from tests.smtp_server import defer, reject

RECIPIENTS = "recipient.example.com"
BOUNCE_DOMAIN = "bounces.example.com"


def test_postfix_dsns_bounce_the_sends_hard_and_soft(runtime, start_smtp_server, inbound):
    require_postfix()
    rt = fast_runtime(runtime)
    remote = start_smtp_server()
    gone, full = f"gone@{RECIPIENTS}", f"full@{RECIPIENTS}"
    remote.script(gone, reject(f"550 5.1.1 <{gone}>: Recipient address rejected: User unknown"))
    remote.script(full, defer(times=10_000, reply=f"452 4.2.2 <{full}>: Mailbox full"))
    transports = {
        RECIPIENTS: ("127.0.0.1", remote.port),
        BOUNCE_DOMAIN: ("127.0.0.1", inbound.port),
    }
    with PrivatePostfix(transports) as relay:
        arranged = arrange(rt, remote, 0, launch=False)
        fine = [f"reader{i}@{RECIPIENTS}" for i in range(3)]
        add_contacts(rt, arranged.org_id, [*fine, gone, full])
        with unit_of_work(rt.sessions) as session:
            session.execute(
                update(EmailConfig)
                .where(EmailConfig.org_id == arranged.org_id)
                .values(port=relay.port, bounce_address=f"b{uuid.uuid4().hex[:8]}@{BOUNCE_DOMAIN}")
            )
        with unit_of_work(rt.sessions) as session:
            launch_campaign(
                session,
                arranged.org_id,
                arranged.campaign_id,
                actor=system_actor(arranged.org_id, CLI),
            )
        with InProcessWorker(rt):
            wait_for_status(rt, arranged.campaign_id, "SENT")

        def bounced() -> dict[str, object] | None:
            rows = {s.email: s for s in sends(rt, arranged.campaign_id)}
            done = rows[gone].status == "BOUNCED" and rows[full].status == "BOUNCED"
            return rows if done else None

        try:
            rows = wait_until(bounced, timeout=60)
        except AssertionError:
            raise AssertionError("no bounce came back:\n" + relay.log_tail()) from None

    assert (rows[gone].bounce_type, rows[full].bounce_type) == ("hard", "soft")
    assert "User unknown" in rows[gone].error and "Mailbox full" in rows[full].error
    assert all(rows[address].status == "DELIVERED" for address in fine)
    assert sorted(m.rcpt_tos[0] for m in remote.messages) == sorted(fine)
    row = campaign(rt, arranged.campaign_id)
    assert (row.delivered, row.failed, row.bounced) == (3, 2, 2)
    assert_counters_match_sends(rt, arranged.campaign_id)
