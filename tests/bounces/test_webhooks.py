"""SendGrid, Mailgun and Postmark webhooks over real HTTP: a signed call's bounces and
complaints have the effects of a bounce by mail once a worker ingests them; other events
change nothing; a call that is not authenticated answers 401 and records nothing."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import httpx
import pytest

from herald.runtime import Runtime
from tests.bounces import payloads
from tests.bounces.arrange import (
    COMPLAINT,
    HARD,
    SOFT,
    UNTOUCHED,
    Org,
    delivered_send,
    ingest_stored,
    org_with_settings,
    outcome,
    reports,
    stored_calls,
)

MAILGUN_KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
JSON_TYPE = {"Content-Type": "application/json"}


def _post(client: httpx.Client, url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return client.post(url, content=body, headers=headers)


# -- SendGrid -------------------------------------------------------------------------------


@pytest.fixture
def sendgrid_org(client: httpx.Client, runtime: Runtime) -> tuple[Org, payloads.SendgridSigner]:
    signer = payloads.SendgridSigner()
    return org_with_settings(
        client, runtime, sendgridVerificationKey=signer.verification_key
    ), signer


def test_sendgrid_bounce_and_spamreport_have_their_effects(client, runtime, sendgrid_org) -> None:
    org, signer = sendgrid_org
    bounced = delivered_send(runtime, org.id)
    complained = delivered_send(runtime, org.id)
    untouched = delivered_send(runtime, org.id)
    events = [
        *payloads.sendgrid_events(untouched.email, untouched.message_id(runtime)),
        payloads.sendgrid_bounce(bounced.email, bounced.message_id(runtime)),
        payloads.sendgrid_spamreport(complained.email, complained.message_id(runtime)),
    ]
    body = json.dumps(events).encode()

    r = org.call_webhook(client, "sendgrid", body, signer.headers(body))

    assert r.status_code == 200, r.text
    assert r.json() == {"recorded": 2}
    assert stored_calls(runtime, org.id) == 1  # stored before the answer
    assert ingest_stored(runtime) == 1
    assert outcome(runtime, bounced).__dict__ == HARD
    assert outcome(runtime, complained).__dict__ == COMPLAINT
    assert outcome(runtime, untouched).__dict__ == UNTOUCHED
    found = {(r.email, r.type, r.source, r.matched_by) for r in reports(runtime, org.id)}
    assert found == {
        (bounced.email, "hard", "sendgrid", "message_id"),
        (complained.email, "complaint", "sendgrid", "message_id"),
    }


def test_sendgrid_blocked_is_soft_and_dropped_is_hard(client, runtime, sendgrid_org) -> None:
    org, signer = sendgrid_org
    blocked = delivered_send(runtime, org.id)
    dropped = delivered_send(runtime, org.id)
    drop = {**payloads.sendgrid_bounce(dropped.email, ""), "event": "dropped"}
    drop.pop("type")
    drop["reason"] = "Bounced Address"
    body = json.dumps([payloads.sendgrid_bounce(blocked.email, "", kind="blocked"), drop]).encode()

    assert org.call_webhook(client, "sendgrid", body, signer.headers(body)).status_code == 200
    ingest_stored(runtime)

    assert outcome(runtime, blocked).__dict__ == SOFT
    assert outcome(runtime, dropped).__dict__ == HARD


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"event": "bounce", "status": "5.2.2", "reason": "552 5.2.2 Mailbox full"}, SOFT),
        ({"event": "bounce", "status": "5.1.1", "reason": "550 5.1.1 No such user"}, HARD),
        ({"event": "dropped", "reason": "Invalid"}, HARD),
        ({"event": "dropped", "reason": "Spam Reporting Address"}, COMPLAINT),
        ({"event": "dropped", "reason": "Spam Content (if Spam Checker app is enabled)"}, SOFT),
        ({"event": "dropped", "reason": "Unsubscribed Address"}, UNTOUCHED),
        ({"event": "dropped", "reason": "Recipient List over Package Quota"}, UNTOUCHED),
    ],
    ids=[
        "bounce-mailbox-full",
        "bounce-unknown-user",
        "dropped-invalid",
        "dropped-spam-reporter",
        "dropped-spam-content",
        "dropped-unsubscribed",
        "dropped-over-quota",
    ],
)
def test_sendgrid_events_by_status_and_reason(client, runtime, sendgrid_org, event, expected):
    org, signer = sendgrid_org
    send = delivered_send(runtime, org.id)
    item = {**payloads.sendgrid_bounce(send.email, send.message_id(runtime)), **event}
    if event["event"] == "dropped":
        item.pop("type")
        item.pop("status")
    body = json.dumps([item]).encode()

    assert org.call_webhook(client, "sendgrid", body, signer.headers(body)).is_success
    ingest_stored(runtime)

    assert outcome(runtime, send).__dict__ == expected


@pytest.mark.parametrize("tamper", ["body", "timestamp", "other key", "no signature"])
def test_sendgrid_call_not_signed_with_the_orgs_key_is_refused(
    client, runtime, sendgrid_org, tamper
) -> None:
    org, signer = sendgrid_org
    send = delivered_send(runtime, org.id)
    body = json.dumps([payloads.sendgrid_bounce(send.email, send.message_id(runtime))]).encode()
    headers = signer.headers(body)
    if tamper == "body":
        body = body.replace(b"500 unknown", b"550 unknown")
    elif tamper == "timestamp":
        headers["X-Twilio-Email-Event-Webhook-Timestamp"] = str(int(time.time()) + 1)
    elif tamper == "other key":
        headers = payloads.SendgridSigner().headers(body)
    else:
        del headers["X-Twilio-Email-Event-Webhook-Signature"]

    r = org.call_webhook(client, "sendgrid", body, headers)

    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "webhook_unauthenticated"
    assert stored_calls(runtime, org.id) == 0
    ingest_stored(runtime)
    assert reports(runtime, org.id) == []
    assert outcome(runtime, send).__dict__ == UNTOUCHED


def test_sendgrid_without_a_verification_key_is_refused(client, runtime) -> None:
    org = org_with_settings(client, runtime)
    signer = payloads.SendgridSigner()
    body = json.dumps([payloads.sendgrid_bounce("x@example.com", "")]).encode()

    r = org.call_webhook(client, "sendgrid", body, signer.headers(body))

    assert r.status_code == 401
    assert stored_calls(runtime, org.id) == 0


def test_a_call_with_only_other_events_is_answered_and_stores_nothing(
    client, runtime, sendgrid_org
) -> None:
    org, signer = sendgrid_org
    send = delivered_send(runtime, org.id)
    body = json.dumps(payloads.sendgrid_events(send.email, send.message_id(runtime))).encode()

    r = org.call_webhook(client, "sendgrid", body, signer.headers(body))

    assert r.status_code == 200
    assert r.json() == {"recorded": 0}
    assert stored_calls(runtime, org.id) == 0
    assert outcome(runtime, send).__dict__ == UNTOUCHED


# -- Mailgun --------------------------------------------------------------------------------


@pytest.fixture
def mailgun_org(client: httpx.Client, runtime: Runtime) -> Org:
    return org_with_settings(client, runtime, mailgunSigningKey=MAILGUN_KEY)


def mailgun_failed(send, runtime, said: str, reason: str = "bounce") -> dict[str, Any]:
    event = payloads.mailgun_failed(send.email, send.message_id(runtime))
    event["reason"] = reason
    event["delivery-status"].update(message=said, code=int(said[:3]) if said else 605)
    return event


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda s, r: payloads.mailgun_failed(s.email, s.message_id(r)), HARD),
        # Mailgun still retries: a delay, not a bounce
        (lambda s, r: payloads.mailgun_failed(s.email, s.message_id(r), "temporary"), UNTOUCHED),
        (lambda s, r: mailgun_failed(s, r, "552 5.2.2 Mailbox full"), SOFT),
        (lambda s, r: mailgun_failed(s, r, "", reason="old"), SOFT),  # expired after retries
        (lambda s, r: mailgun_failed(s, r, "", reason="suppress-bounce"), HARD),
        (lambda s, r: mailgun_failed(s, r, "", reason="suppress-complaint"), COMPLAINT),
        (lambda s, r: mailgun_failed(s, r, "", reason="suppress-unsubscribe"), UNTOUCHED),
        (lambda s, r: payloads.mailgun_complained(s.email, s.message_id(r)), COMPLAINT),
        (lambda s, r: payloads.mailgun_delivered(s.email), UNTOUCHED),
    ],
    ids=[
        "failed-permanent",
        "failed-temporary",
        "failed-mailbox-full",
        "failed-old",
        "suppress-bounce",
        "suppress-complaint",
        "suppress-unsubscribe",
        "complained",
        "delivered",
    ],
)
def test_mailgun_events(client, runtime, mailgun_org, make, expected) -> None:
    send = delivered_send(runtime, mailgun_org.id)
    body = payloads.mailgun_body(MAILGUN_KEY, make(send, runtime))

    r = mailgun_org.call_webhook(client, "mailgun", body, JSON_TYPE)

    assert r.status_code == 200, r.text
    ingest_stored(runtime)
    assert outcome(runtime, send).__dict__ == expected


def test_mailgun_token_is_never_accepted_twice(client, runtime, mailgun_org) -> None:
    first, second = delivered_send(runtime, mailgun_org.id), delivered_send(runtime, mailgun_org.id)
    url = mailgun_org.webhook_path(client, "mailgun")
    token = "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0"
    now = int(time.time())
    body = payloads.mailgun_body(MAILGUN_KEY, payloads.mailgun_failed(first.email, ""), now, token)
    again = payloads.mailgun_body(
        MAILGUN_KEY, payloads.mailgun_failed(second.email, ""), now, token
    )

    assert _post(client, url, body, JSON_TYPE).status_code == 200
    assert _post(client, url, body, JSON_TYPE).status_code == 401  # the same call replayed
    assert _post(client, url, again, JSON_TYPE).status_code == 401  # another body, same token

    assert stored_calls(runtime, mailgun_org.id) == 1
    ingest_stored(runtime)
    assert outcome(runtime, first).__dict__ == HARD
    assert outcome(runtime, second).__dict__ == UNTOUCHED


@pytest.mark.parametrize(
    "problem", ["six minutes old", "six minutes ahead", "wrong key", "no signature"]
)
def test_mailgun_call_refused(client, runtime, mailgun_org, problem) -> None:
    send = delivered_send(runtime, mailgun_org.id)
    event = payloads.mailgun_failed(send.email, send.message_id(runtime))
    now = int(time.time())
    if problem == "six minutes old":
        body = payloads.mailgun_body(MAILGUN_KEY, event, now - 360)
    elif problem == "six minutes ahead":
        body = payloads.mailgun_body(MAILGUN_KEY, event, now + 360)
    elif problem == "wrong key":
        body = payloads.mailgun_body("key-another-accounts-key", event)
    else:
        body = json.dumps({"event-data": event}).encode()

    r = mailgun_org.call_webhook(client, "mailgun", body, JSON_TYPE)

    assert r.status_code == 401
    assert stored_calls(runtime, mailgun_org.id) == 0
    ingest_stored(runtime)
    assert outcome(runtime, send).__dict__ == UNTOUCHED


def test_mailgun_timestamp_just_within_five_minutes_is_accepted(
    client, runtime, mailgun_org
) -> None:
    send = delivered_send(runtime, mailgun_org.id)
    body = payloads.mailgun_body(
        MAILGUN_KEY, payloads.mailgun_failed(send.email, ""), int(time.time()) - 290
    )
    r = mailgun_org.call_webhook(client, "mailgun", body, JSON_TYPE)
    assert r.status_code == 200


# -- Postmark -------------------------------------------------------------------------------


def _postmark(org: Org, client: httpx.Client) -> tuple[str, dict[str, str]]:
    shown = org.settings(client)
    credentials = payloads.basic(shown["postmarkUsername"], shown["postmarkPassword"])
    return org.webhook_path(client, "postmark"), credentials


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda email: payloads.postmark_bounce(email), HARD),
        (lambda email: payloads.postmark_bounce(email, "SoftBounce", 4096), SOFT),
        (lambda email: payloads.postmark_spam_complaint(email), COMPLAINT),
        (lambda email: payloads.postmark_bounce(email, "AutoResponder", 64), UNTOUCHED),
        # "Message delayed": Postmark still tries
        (lambda email: payloads.postmark_bounce(email, "Transient", 2), UNTOUCHED),
        (lambda email: payloads.postmark_bounce(email, "DnsError", 256), SOFT),
        (lambda email: payloads.postmark_delivery(email), UNTOUCHED),
    ],
    ids=["hard", "soft", "spam-complaint", "auto-responder", "transient", "dns-error", "delivery"],
)
def test_postmark_events(client, runtime, make, expected) -> None:
    org = org_with_settings(client, runtime)
    send = delivered_send(runtime, org.id)
    url, credentials = _postmark(org, client)

    r = _post(client, url, json.dumps(make(send.email)).encode(), credentials)

    assert r.status_code == 200, r.text
    ingest_stored(runtime)
    assert outcome(runtime, send).__dict__ == expected


def test_a_nul_or_a_lone_surrogate_in_an_event_is_stored_without_it(client, runtime) -> None:
    """PostgreSQL refuses a NUL in text: the call's events were all lost."""
    org = org_with_settings(client, runtime)
    send = delivered_send(runtime, org.id)
    url, credentials = _postmark(org, client)
    event = {**payloads.postmark_bounce(send.email), "Details": "smtp;550 no\u0000such \ud800user"}
    body = json.dumps(event).encode()
    assert b"\\u0000" in body and b"\\ud800" in body

    assert _post(client, url, body, credentials).status_code == 200
    ingest_stored(runtime)

    assert outcome(runtime, send).__dict__ == HARD
    (report,) = reports(runtime, org.id)
    assert report.reason == "smtp;550 nosuch ?user"


@pytest.mark.parametrize("problem", ["wrong password", "wrong user", "none"])
def test_postmark_without_the_shown_credentials_is_refused(client, runtime, problem) -> None:
    org = org_with_settings(client, runtime)
    send = delivered_send(runtime, org.id)
    url, credentials = _postmark(org, client)
    shown = org.settings(client)
    if problem == "wrong password":
        credentials = payloads.basic(shown["postmarkUsername"], shown["postmarkPassword"] + "x")
    elif problem == "wrong user":
        credentials = payloads.basic("postmark", shown["postmarkPassword"])
    else:
        credentials = {"Content-Type": "application/json"}

    r = _post(client, url, json.dumps(payloads.postmark_bounce(send.email)).encode(), credentials)

    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Basic")
    assert stored_calls(runtime, org.id) == 0


# -- the URL itself -------------------------------------------------------------------------


def test_unknown_key_is_refused_and_records_nothing(client, runtime) -> None:
    org = org_with_settings(client, runtime)
    send = delivered_send(runtime, org.id)
    url, credentials = _postmark(org, client)
    wrong = url.rsplit("/", 1)[0] + "/" + "A" * 43

    r = _post(client, wrong, json.dumps(payloads.postmark_bounce(send.email)).encode(), credentials)

    assert r.status_code == 401
    assert stored_calls(runtime, org.id) == 0


def test_regenerated_key_retires_the_old_urls(client, runtime) -> None:
    org = org_with_settings(client, runtime)
    send = delivered_send(runtime, org.id)
    old_url, old_credentials = _postmark(org, client)

    r = client.post("/api/settings/email/webhook-key", headers=org.headers)
    assert r.status_code == 200, r.text
    new_url, new_credentials = _postmark(org, client)
    body = json.dumps(payloads.postmark_bounce(send.email)).encode()

    assert new_url != old_url
    assert _post(client, old_url, body, new_credentials).status_code == 401
    assert _post(client, new_url, body, old_credentials).status_code == 401  # new password too
    assert _post(client, new_url, body, new_credentials).status_code == 200


def first_answer(client: httpx.Client, url: str, headers: dict[str, str]) -> bytes:
    """The status line the server answers a POST announcing a 1 MB body it has not been
    sent (``Expect: 100-continue``): "100 Continue" once the app reads the body, else the
    app's answer, given without reading it."""
    host, port = client.base_url.host, client.base_url.port
    lines = [f"POST {url} HTTP/1.1", f"Host: {host}:{port}", "Content-Length: 1000000"]
    lines += ["Expect: 100-continue", *(f"{k}: {v}" for k, v in headers.items())]
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return sock.makefile("rb").readline().strip()


def test_a_body_is_read_only_once_its_caller_is_known(client, runtime) -> None:
    org = org_with_settings(client, runtime)
    url, credentials = _postmark(org, client)
    stranger = url.rsplit("/", 1)[0] + "/" + "A" * 43
    wrong = payloads.basic("herald", "not-the-password")

    assert first_answer(client, stranger, credentials).startswith(b"HTTP/1.1 401")
    assert first_answer(client, url, wrong).startswith(b"HTTP/1.1 401")
    assert first_answer(client, url, credentials) == b"HTTP/1.1 100 Continue"
    sendgrid = org.webhook_path(client, "sendgrid").rsplit("/", 1)[0] + "/" + "A" * 43
    assert first_answer(client, sendgrid, {}).startswith(b"HTTP/1.1 401")


def test_unknown_provider_is_404(client, runtime) -> None:
    org = org_with_settings(client, runtime)
    key = org.settings(client)["webhookKey"]
    assert client.post(f"/webhooks/sparkpost/{key}", content=b"{}").status_code == 404
