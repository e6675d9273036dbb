"""The sending engine end to end over real SMTP on loopback: launch, workers, outcomes."""

from __future__ import annotations

from collections import Counter

from herald.crm.models import Contact
from herald.db import unit_of_work
from tests.marketing.engine import (
    InProcessWorker,
    arrange,
    assert_counters_match_sends,
    campaign,
    fast_runtime,
    sends,
    status_counts,
    wait_for_status,
    wait_until,
)
from tests.smtp_server import defer, drop, reject


def test_every_recipient_gets_one_personalised_message_and_the_campaign_ends_sent(
    runtime, smtp_server
):
    rt = fast_runtime(runtime)
    arranged = arrange(rt, smtp_server, 250)
    assert campaign(rt, arranged.campaign_id).recipients == 250
    with InProcessWorker(rt, concurrency=4):
        wait_for_status(rt, arranged.campaign_id, "SENT")
    received = Counter(m.rcpt_tos[0] for m in smtp_server.messages)
    assert set(received) == set(arranged.emails)
    assert set(received.values()) == {1}
    message = smtp_server.messages[0].message
    assert message["Subject"] == "Hello Ann"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Unsubscribe"].startswith("<https://herald.test/u/")
    row = campaign(rt, arranged.campaign_id)
    assert (row.delivered, row.failed, row.unknown) == (250, 0, 0)
    assert row.completed_at is not None
    assert all(s.status == "DELIVERED" and s.delivered_at for s in sends(rt, arranged.campaign_id))
    assert_counters_match_sends(rt, arranged.campaign_id)


def test_each_send_has_its_own_unguessable_token(runtime, smtp_server):
    arranged = arrange(runtime, smtp_server, 50)
    tokens = [s.token for s in sends(runtime, arranged.campaign_id)]
    assert len(set(tokens)) == 50
    assert all(len(t) == 64 and int(t, 16) >= 0 for t in tokens)


def test_a_deferral_is_retried_with_backoff_then_delivered(runtime, smtp_server):
    rt = fast_runtime(runtime)
    arranged = arrange(rt, smtp_server, 5)
    greylisted = arranged.emails[2]
    smtp_server.script(greylisted, defer(times=2))
    with InProcessWorker(rt):
        wait_for_status(rt, arranged.campaign_id, "SENT")
    send = next(s for s in sends(rt, arranged.campaign_id) if s.email == greylisted)
    assert send.status == "DELIVERED"
    assert send.attempts == 3
    assert [m.rcpt_tos[0] for m in smtp_server.messages].count(greylisted) == 1
    assert_counters_match_sends(rt, arranged.campaign_id)


def test_a_deferral_past_the_window_fails_with_the_servers_answer(runtime, smtp_server):
    rt = fast_runtime(runtime, retry_base_seconds=0.3, retry_window_seconds=1.5)
    arranged = arrange(rt, smtp_server, 3)
    stuck = arranged.emails[0]
    smtp_server.script(stuck, defer(times=1000, reply="452 4.2.2 Mailbox full"))
    with InProcessWorker(rt):
        wait_for_status(rt, arranged.campaign_id, "SENT", timeout=30)
    send = next(s for s in sends(rt, arranged.campaign_id) if s.email == stuck)
    assert send.status == "FAILED"
    assert "452 4.2.2 Mailbox full" in send.error
    assert send.attempts >= 2
    assert status_counts(rt, arranged.campaign_id)["DELIVERED"] == 2


def test_a_permanent_rejection_fails_at_once_and_spares_the_rest_of_the_batch(runtime, smtp_server):
    rt = fast_runtime(runtime)
    arranged = arrange(rt, smtp_server, 30)
    gone = arranged.emails[7]
    smtp_server.script(gone, reject("550 5.1.1 No such user here"))
    with InProcessWorker(rt):
        wait_for_status(rt, arranged.campaign_id, "SENT")
    by_email = {s.email: s for s in sends(rt, arranged.campaign_id)}
    assert by_email[gone].status == "FAILED"
    assert by_email[gone].attempts == 1
    assert "550 5.1.1 No such user here" in by_email[gone].error
    assert sum(1 for s in by_email.values() if s.status == "DELIVERED") == 29
    assert len(smtp_server.messages) == 29
    row = campaign(rt, arranged.campaign_id)
    assert (row.delivered, row.failed) == (29, 1)


def test_a_rejection_at_end_of_data_is_failed_too(runtime, smtp_server):
    rt = fast_runtime(runtime)
    arranged = arrange(rt, smtp_server, 3)
    smtp_server.script(arranged.emails[1], reject("554 5.7.1 Spam detected", stage="data"))
    with InProcessWorker(rt):
        wait_for_status(rt, arranged.campaign_id, "SENT")
    failed = [s for s in sends(rt, arranged.campaign_id) if s.status == "FAILED"]
    assert [s.email for s in failed] == [arranged.emails[1]]
    assert "554 5.7.1 Spam detected" in failed[0].error


def test_a_connection_dropped_after_the_final_dot_is_unknown_and_never_resent(runtime, smtp_server):
    rt = fast_runtime(runtime)
    arranged = arrange(rt, smtp_server, 4)
    ambiguous = arranged.emails[1]
    smtp_server.script(ambiguous, drop(stage="data"))
    with InProcessWorker(rt):
        wait_for_status(rt, arranged.campaign_id, "SENT")
    send = next(s for s in sends(rt, arranged.campaign_id) if s.email == ambiguous)
    assert send.status == "UNKNOWN"
    assert "may have been delivered" in send.error
    row = campaign(rt, arranged.campaign_id)
    assert (row.delivered, row.unknown) == (3, 1)
    assert_counters_match_sends(rt, arranged.campaign_id)


def test_a_contact_who_opts_out_after_the_launch_gets_nothing(runtime, smtp_server):
    rt = fast_runtime(runtime)
    arranged = arrange(rt, smtp_server, 10)
    quitter = arranged.emails[4]
    with unit_of_work(rt.sessions) as session:
        contact = session.query(Contact).filter(Contact.email == quitter).one()
        contact.marketing_opt_out = True
    with InProcessWorker(rt):
        wait_for_status(rt, arranged.campaign_id, "SENT")
    assert quitter not in {m.rcpt_tos[0] for m in smtp_server.messages}
    send = next(s for s in sends(rt, arranged.campaign_id) if s.email == quitter)
    assert send.status == "FAILED" and "opted out" in send.error
    assert len(smtp_server.messages) == 9


def test_an_unreachable_server_holds_the_campaign_instead_of_failing_everyone(
    runtime, start_smtp_server
):
    from tests.smtp_server import SmtpServer, free_port

    # a run of failures long enough to pause it is tests/marketing/test_autopause.py's
    rt = fast_runtime(runtime, retry_base_seconds=0.5, autopause_failures=1000)
    port = free_port()
    nowhere = SmtpServer(port=port)  # not started: connections are refused
    arranged = arrange(rt, nowhere, 20)
    with InProcessWorker(rt):
        held = wait_until(lambda: campaign(rt, arranged.campaign_id).hold_reason)
        assert "cannot reach SMTP server" in held
        assert status_counts(rt, arranged.campaign_id) == Counter({"QUEUED": 20})
        server = start_smtp_server(port=port)
        wait_for_status(rt, arranged.campaign_id, "SENT")
    assert len(server.messages) == 20
    assert campaign(rt, arranged.campaign_id).hold_reason is None


def test_a_login_herald_will_not_send_in_clear_holds_the_campaign_with_the_reason(
    runtime, start_smtp_server
):
    """A username and password with security "none": Herald refuses to send them, so the
    campaign waits with the reason (a relay refusing the login pauses it instead:
    tests/marketing/test_autopause.py)."""
    rt = fast_runtime(runtime, retry_base_seconds=30)
    server = start_smtp_server(credentials=("mailer", "right-password"))
    arranged = arrange(rt, server, 5, username="mailer", password="wrong-password")
    with InProcessWorker(rt):
        held = wait_until(lambda: campaign(rt, arranged.campaign_id).hold_reason)
    assert "only over TLS" in held
    assert status_counts(rt, arranged.campaign_id) == Counter({"QUEUED": 5})
    assert server.messages == []


def test_smtp_auth_with_the_stored_password(runtime, start_smtp_server):
    # Herald logs in only over TLS (issue 13.1); the test server's certificate is self-signed.
    rt = fast_runtime(runtime, smtp_verify_tls=False)
    server = start_smtp_server(tls="starttls", credentials=("mailer", "s3cret"))
    arranged = arrange(rt, server, 3, username="mailer", password="s3cret", security="starttls")
    with InProcessWorker(rt):
        wait_for_status(rt, arranged.campaign_id, "SENT")
    assert {m.login for m in server.messages} == {"mailer"}


def test_starttls_is_used_when_configured(runtime, start_smtp_server):
    rt = fast_runtime(
        runtime, smtp_verify_tls=False
    )  # the test server's certificate is self-signed
    server = start_smtp_server(tls="starttls")
    arranged = arrange(rt, server, 2, security="starttls")
    with InProcessWorker(rt):
        wait_for_status(rt, arranged.campaign_id, "SENT")
    assert all(m.tls for m in server.messages) and len(server.messages) == 2
