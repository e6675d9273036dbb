"""A campaign sent by the worker over SMTP carries what a bounce needs (the VERP return
path, a Message-ID naming the send, Feedback-ID and List-Id), and a DSN to that return
path, through Herald's own receiver, bounces exactly that send."""

from __future__ import annotations

import smtplib

from sqlalchemy import update

from herald.db import unit_of_work
from herald.dev.bouncer import HARD, delivery_status_notification
from herald.mail.sendref import SendRefKeys, read_message_id, read_tag, split_return_path
from herald.mailconfig.models import EmailConfig
from tests.marketing.engine import (
    InProcessWorker,
    arrange,
    assert_counters_match_sends,
    campaign,
    fast_runtime,
    sends,
    wait_for_status,
)

BOUNCE_ADDRESS = "bounces@bounces.herald.test"


def test_a_sent_campaign_bounces_through_the_receiver(runtime, smtp_server, inbound):
    rt = fast_runtime(runtime)
    arranged = arrange(rt, smtp_server, 3, launch=False)
    with unit_of_work(rt.sessions) as session:
        session.execute(
            update(EmailConfig)
            .where(EmailConfig.org_id == arranged.org_id)
            .values(bounce_address=f"{arranged.org_id.hex[:8]}-{BOUNCE_ADDRESS}")
        )
    from herald.audit.service import CLI, system_actor
    from herald.marketing.launch import launch_campaign

    with unit_of_work(rt.sessions) as session:
        launch_campaign(
            session, arranged.org_id, arranged.campaign_id, actor=system_actor(arranged.org_id, CLI)
        )
    with InProcessWorker(rt):
        wait_for_status(rt, arranged.campaign_id, "SENT")

    keys = SendRefKeys.from_secret(rt.settings.secret_key)
    by_send = {s.email: s.id for s in sends(rt, arranged.campaign_id)}
    for received in smtp_server.messages:
        (rcpt,) = received.rcpt_tos
        path = split_return_path(received.mail_from)
        assert path.bounce_address == f"{arranged.org_id.hex[:8]}-{BOUNCE_ADDRESS}"
        assert read_tag(keys.tag, path.tag or "") == by_send[rcpt]
        message = received.message
        assert read_message_id(keys.message_id, message["Message-ID"]) == by_send[rcpt]
        assert message["Feedback-ID"] == f"{arranged.campaign_id}:{arranged.org_id}:herald"
        assert f"<{arranged.org_id.hex}." in message["List-Id"]

    dead = smtp_server.messages[1]
    dsn = delivery_status_notification(
        return_path=dead.mail_from, recipient=dead.rcpt_tos[0], failure=HARD, original=dead.data
    )
    with smtplib.SMTP("127.0.0.1", inbound.port, timeout=30) as client:
        client.sendmail("", [dead.mail_from], dsn)

    statuses = {s.email: s.status for s in sends(rt, arranged.campaign_id)}
    assert statuses[dead.rcpt_tos[0]] == "BOUNCED"
    assert sorted(statuses.values()) == ["BOUNCED", "DELIVERED", "DELIVERED"]
    row = campaign(rt, arranged.campaign_id)
    assert (row.delivered, row.failed, row.bounced) == (2, 1, 1)
    assert_counters_match_sends(rt, arranged.campaign_id)
