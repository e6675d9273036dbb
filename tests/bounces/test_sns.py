"""Amazon SES through SNS, over real HTTP and TLS: the signing certificate fetched over https
only from HERALD_SNS_CERT_HOSTS (here an https server on loopback with a test CA, trusted
through SSL_CERT_FILE), signatures of versions 1 and 2, the subscription confirmed."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from herald.bounces.webhooks.sns import host_allowed, string_to_sign
from herald.runtime import Runtime
from tests.bounces.arrange import (
    COMPLAINT,
    HARD,
    SOFT,
    UNTOUCHED,
    Delivered,
    delivered_send,
    ingest_stored,
    org_with_settings,
    outcome,
    reports,
    stored_calls,
)
from tests.bounces.certs import Issued, make_ca, signing_cert, trust
from tests.bounces.https_server import FakeSns
from tests.conftest import LiveServer

TOPIC = "arn:aws:sns:us-east-1:123456789012:herald-bounces"
CERT_PATH = "/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem"


@pytest.fixture(scope="module")
def ca() -> Issued:
    return make_ca()


@pytest.fixture(scope="module")
def signer() -> Issued:
    return signing_cert()


@pytest.fixture
def fake_sns(ca: Issued, signer: Issued, tmp_path: Path) -> Iterator[FakeSns]:
    files = {CERT_PATH: signer.cert_pem(), "/expired.pem": signing_cert(expired=True).cert_pem()}
    server = FakeSns(ca, tmp_path, files)
    yield server
    server.stop()


@pytest.fixture
def trusted(ca: Issued, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trust(ca, tmp_path, monkeypatch)


@pytest.fixture
def sns_app(start_server: Callable[..., LiveServer], fake_sns: FakeSns) -> Iterator[httpx.Client]:
    server = start_server(sns_cert_hosts=f"sns.*.amazonaws.com, 127.0.0.1:{fake_sns.port}")
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def sns_message(
    signer: Issued,
    fake_sns: FakeSns,
    message_type: str,
    message: str,
    version: str = "1",
    **fields: Any,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "Type": message_type,
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": TOPIC,
        "Message": message,
        "Timestamp": "2026-12-07T00:54:06.655Z",
        "SignatureVersion": version,
        "SigningCertURL": fake_sns.base + CERT_PATH,
    }
    if message_type == "Notification":
        data["UnsubscribeURL"] = fake_sns.base + "/?Action=Unsubscribe&SubscriptionArn=" + TOPIC
    else:
        data["Token"] = "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a"
        data["SubscribeURL"] = f"{fake_sns.base}/confirm?Action=ConfirmSubscription&Token=1"
    data.update(fields)
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()  # noqa: S303 (SNS's v1)
    signature = signer.key.sign(string_to_sign(data), padding.PKCS1v15(), algorithm)
    data["Signature"] = base64.b64encode(signature).decode()
    return data


def ses_bounce(send: Delivered, message_id: str, bounce_type: str = "Permanent") -> str:
    """The SES documentation's bounce notification, about the test's send."""
    return json.dumps(
        {
            "notificationType": "Bounce",
            "bounce": {
                "bounceType": bounce_type,
                "reportingMTA": "dns; email.example.com",
                "bouncedRecipients": [
                    {
                        "emailAddress": send.email,
                        "status": "5.1.1",
                        "action": "failed",
                        "diagnosticCode": f"smtp; 550 5.1.1 <{send.email}>... User unknown",
                    }
                ],
                "bounceSubType": "General",
                "timestamp": "2016-01-27T14:59:38.237Z",
                "feedbackId": "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa068a-000000",
                "remoteMtaIp": "127.0.2.0",
            },
            "mail": _mail(send, message_id),
        }
    )


def ses_complaint(send: Delivered, message_id: str) -> str:
    return json.dumps(
        {
            "notificationType": "Complaint",
            "complaint": {
                "userAgent": "AnyCompany Feedback Loop (V0.01)",
                "complainedRecipients": [{"emailAddress": send.email}],
                "complaintFeedbackType": "abuse",
                "arrivalDate": "2016-01-27T14:59:38.237Z",
                "timestamp": "2016-01-27T14:59:38.237Z",
                "feedbackId": "000001378603177f-18c07c78-fa81-4a58-9dd1-fedc3cb8f49a-000000",
            },
            "mail": _mail(send, message_id),
        }
    )


def _mail(send: Delivered, message_id: str) -> dict[str, Any]:
    return {
        "timestamp": "2016-01-27T14:59:38.237Z",
        "source": "news@acme.example.com",
        "sourceArn": "arn:aws:ses:us-east-1:888888888888:identity/acme.example.com",
        "sourceIp": "127.0.3.0",
        "sendingAccountId": "123456789012",
        "messageId": "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa0680-000000",
        "destination": [send.email],
        "headersTruncated": False,
        "headers": [
            {"name": "From", "value": "Acme <news@acme.example.com>"},
            {"name": "To", "value": send.email},
            {"name": "Message-ID", "value": message_id},
            {"name": "Subject", "value": "Hello"},
        ],
        "commonHeaders": {
            "from": ["Acme <news@acme.example.com>"],
            "to": [send.email],
            "messageId": message_id,
            "subject": "Hello",
        },
    }


def _post(app: httpx.Client, url: str, data: dict[str, Any]) -> httpx.Response:
    headers = {"Content-Type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": data["Type"]}
    return app.post(url, content=json.dumps(data).encode(), headers=headers)


@pytest.mark.usefixtures("trusted")
@pytest.mark.parametrize(
    ("version", "notification", "expected"),
    [
        ("1", lambda s, m: ses_bounce(s, m), HARD),
        ("2", lambda s, m: ses_bounce(s, m, "Transient"), SOFT),
        ("2", lambda s, m: ses_complaint(s, m), COMPLAINT),
    ],
    ids=["v1-permanent", "v2-transient", "v2-complaint"],
)
def test_ses_notifications_have_their_effects(
    client, runtime: Runtime, sns_app, fake_sns, signer, version, notification, expected
) -> None:
    org = org_with_settings(client, runtime)
    send = delivered_send(runtime, org.id)
    message = sns_message(
        signer, fake_sns, "Notification", notification(send, send.message_id(runtime)), version
    )

    r = _post(sns_app, org.webhook_path(client, "ses"), message)

    assert r.status_code == 200, r.text
    ingest_stored(runtime)
    assert outcome(runtime, send).__dict__ == expected
    [report] = reports(runtime, org.id)
    assert (report.source, report.matched_by) == ("ses", "message_id")


@pytest.mark.usefixtures("trusted")
def test_subscription_is_confirmed_through_the_same_host_rule(
    client, runtime, sns_app, fake_sns, signer
) -> None:
    org = org_with_settings(client, runtime)
    url = org.webhook_path(client, "ses")
    message = sns_message(
        signer, fake_sns, "SubscriptionConfirmation", "You have chosen to subscribe"
    )

    r = _post(sns_app, url, message)

    assert r.status_code == 200, r.text
    assert any(path.startswith("/confirm?Action=ConfirmSubscription") for path in fake_sns.requests)
    assert stored_calls(runtime, org.id) == 0

    elsewhere = sns_message(
        signer,
        fake_sns,
        "SubscriptionConfirmation",
        "You have chosen to subscribe",
        SubscribeURL="https://attacker.example/confirm",
    )
    assert _post(sns_app, url, elsewhere).status_code == 401

    unsubscribed = sns_message(signer, fake_sns, "UnsubscribeConfirmation", "You have unsubscribed")
    assert _post(sns_app, url, unsubscribed).status_code == 200
    assert stored_calls(runtime, org.id) == 0


@pytest.mark.usefixtures("trusted")
@pytest.mark.parametrize(
    "problem",
    [
        "tampered message",
        "another key",
        "cert host not allowed",
        "plain http",
        "expired cert",
        "version 3",
    ],
)
def test_ses_call_refused_records_nothing(
    client, runtime, sns_app, fake_sns, signer, problem
) -> None:
    org = org_with_settings(client, runtime)
    send = delivered_send(runtime, org.id)
    text = ses_bounce(send, send.message_id(runtime))
    fetched_before = len(fake_sns.requests)
    if problem == "another key":
        message = sns_message(signing_cert(), fake_sns, "Notification", text)
    elif problem == "cert host not allowed":
        other = f"https://127.0.0.2:{fake_sns.port}{CERT_PATH}"
        message = sns_message(signer, fake_sns, "Notification", text, SigningCertURL=other)
    elif problem == "plain http":
        plain = f"http://127.0.0.1:{fake_sns.port}{CERT_PATH}"
        message = sns_message(signer, fake_sns, "Notification", text, SigningCertURL=plain)
    elif problem == "expired cert":
        expired = fake_sns.base + "/expired.pem"
        message = sns_message(signer, fake_sns, "Notification", text, SigningCertURL=expired)
    elif problem == "version 3":
        message = sns_message(signer, fake_sns, "Notification", text, SignatureVersion="3")
    else:
        message = sns_message(signer, fake_sns, "Notification", text)
        message["Message"] = text.replace("Permanent", "Transient")

    r = _post(sns_app, org.webhook_path(client, "ses"), message)

    assert r.status_code == 401, r.text
    assert stored_calls(runtime, org.id) == 0
    if problem in ("cert host not allowed", "plain http", "version 3"):
        assert len(fake_sns.requests) == fetched_before  # nothing was fetched
    ingest_stored(runtime)
    assert outcome(runtime, send).__dict__ == UNTOUCHED


@pytest.mark.usefixtures("trusted")
def test_nothing_is_fetched_for_a_url_that_names_no_org(client, sns_app, fake_sns, signer):
    url = "/webhooks/ses/" + "A" * 43
    message = sns_message(signer, fake_sns, "Notification", "{}")

    assert _post(sns_app, url, message).status_code == 401
    assert fake_sns.requests == []


@pytest.mark.usefixtures("trusted")
def test_a_certificate_that_could_not_be_fetched_is_not_fetched_again_at_once(
    client, runtime, sns_app, fake_sns, signer
) -> None:
    org = org_with_settings(client, runtime)
    missing = fake_sns.base + "/missing.pem"
    message = sns_message(signer, fake_sns, "Notification", "{}", SigningCertURL=missing)

    for _ in range(3):
        assert _post(sns_app, org.webhook_path(client, "ses"), message).status_code == 401

    assert fake_sns.requests == ["/missing.pem"]


def test_certificate_from_an_untrusted_server_is_refused(
    client, runtime, sns_app, fake_sns, signer, monkeypatch
) -> None:
    """Without SSL_CERT_FILE naming the test CA, the https server is not trusted."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    org = org_with_settings(client, runtime)
    send = delivered_send(runtime, org.id)
    message = sns_message(signer, fake_sns, "Notification", ses_bounce(send, ""))

    assert _post(sns_app, org.webhook_path(client, "ses"), message).status_code == 401
    assert stored_calls(runtime, org.id) == 0


DEFAULT = (("sns.*.amazonaws.com", 443),)


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem", True),
        ("https://sns.eu-west-3.amazonaws.com:443/cert.pem", True),
        ("https://SNS.US-EAST-1.AMAZONAWS.COM/cert.pem", True),
        ("http://sns.us-east-1.amazonaws.com/cert.pem", False),
        ("https://sns.us-east-1.amazonaws.com:8443/cert.pem", False),
        ("https://sns.us-east-1.amazonaws.com.evil.example/cert.pem", False),
        ("https://evil.example/sns.us-east-1.amazonaws.com/cert.pem", False),
        ("https://sns.a.b.amazonaws.com/cert.pem", False),
        ("https://xsns.us-east-1.amazonaws.com/cert.pem", False),
        ("https://user:pw@sns.us-east-1.amazonaws.com/cert.pem", False),
        ("https://sns..amazonaws.com/cert.pem", False),
        ("https://sns.us-gov-west-1.amazonaws.com/cert.pem", True),
        # S3's virtual hosts: buckets named "sns", anyone's
        ("https://sns.s3.amazonaws.com/cert.pem", False),
        ("https://sns.s3-us-west-2.amazonaws.com/cert.pem", False),
        ("https://sns.s3-website.amazonaws.com/cert.pem", False),
        ("", False),
    ],
)
def test_the_default_host_rule(url: str, allowed: bool) -> None:
    assert host_allowed(url, DEFAULT) is allowed
