"""Webhook payloads written from each service's documentation (their example events), with
the recipient, Message-ID and times of the test's own send; and their signing, as each
service documents it, with keys the tests generate."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

# -- SendGrid: Event Webhook reference; signed with ECDSA P-256 / SHA-256 -----------------


def sendgrid_events(email: str, message_id: str) -> list[dict[str, Any]]:
    """The documentation's sample batch: processed, delivered, open, bounce, spamreport."""
    base = {
        "email": email,
        "timestamp": 1513299569,
        "smtp-id": message_id,
        "category": "cat facts",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
    }
    return [
        {**base, "event": "processed", "sg_event_id": "rbtnWrG1DVDGGGFHFyun0A=="},
        {
            **base,
            "event": "delivered",
            "sg_event_id": "rWVYmVk90MjZJ9iohOBa3w==",
            "response": "250 OK",
        },
        {
            **base,
            "event": "open",
            "sg_event_id": "FOTFFO0ecsBE-zxFXfs6WA==",
            "useragent": "Mozilla/4.0 (compatible; MSIE 6.1; Windows XP)",
            "ip": "255.255.255.255",
        },
    ]


def sendgrid_bounce(email: str, message_id: str, kind: str = "bounce") -> dict[str, Any]:
    return {
        "email": email,
        "timestamp": 1513299569,
        "smtp-id": message_id,
        "event": "bounce",
        "category": "cat facts",
        "sg_event_id": "6g4ZI7SA-xmRDv57GoPIPw==",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        "reason": "500 unknown recipient",
        "status": "5.0.0",
        "type": kind,
    }


def sendgrid_spamreport(email: str, message_id: str) -> dict[str, Any]:
    return {
        "email": email,
        "timestamp": 1513299569,
        "smtp-id": message_id,
        "event": "spamreport",
        "category": "cat facts",
        "sg_event_id": "37nvH5QBz858KGVYCM4uOA==",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
    }


class SendgridSigner:
    """The key pair of SendGrid's signed event webhook; the public half goes in Settings."""

    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())

    @property
    def verification_key(self) -> str:
        der = self.private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()

    def headers(self, body: bytes, timestamp: str | None = None) -> dict[str, str]:
        timestamp = timestamp or str(int(time.time()))
        signature = self.private.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            "Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        }


# -- Mailgun: webhooks' "failed" and "complained" examples; HMAC-SHA256 -------------------


def mailgun_failed(email: str, message_id: str, severity: str = "permanent") -> dict[str, Any]:
    return {
        "event": "failed",
        "id": "G9Bn5sl1TC6nu79C8C0bwg",
        "timestamp": 1521233195.375624,
        "log-level": "error",
        "severity": severity,
        "reason": "bounce",
        "recipient": email,
        "recipient-domain": email.partition("@")[2],
        "envelope": {
            "sender": "bob@sandbox.mailgun.org",
            "transport": "smtp",
            "targets": email,
        },
        "message": {
            "headers": {
                "to": f"Alice <{email}>",
                "message-id": message_id.strip("<>"),
                "from": "Bob <bob@sandbox.mailgun.org>",
                "subject": "Test permanent_fail webhook",
            },
            "attachments": [],
            "size": 111,
        },
        "delivery-status": {
            "attempt-no": 1,
            "message": "550 5.1.1 The email account that you tried to reach does not exist.",
            "code": 550,
            "description": "",
            "session-seconds": 0.0,
        },
        "flags": {"is-routed": False, "is-authenticated": True, "is-system-test": False},
        "tags": ["my_tag_1"],
        "user-variables": {"my_var_1": "Mailgun Variable #1"},
    }


def mailgun_complained(email: str, message_id: str) -> dict[str, Any]:
    return {
        "event": "complained",
        "id": "-Agny091SquKnsrW2NEKUA",
        "timestamp": 1521233123.501324,
        "log-level": "warn",
        "envelope": {"sending-ip": "173.193.210.33"},
        "flags": {"is-test-mode": False},
        "message": {
            "headers": {
                "to": f"Alice <{email}>",
                "message-id": message_id.strip("<>"),
                "from": "Bob <bob@sandbox.mailgun.org>",
                "subject": "Test complained webhook",
            },
            "attachments": [],
            "size": 111,
        },
        "recipient": email,
        "campaigns": [],
        "tags": ["my_tag_1"],
        "user-variables": {"my_var_1": "Mailgun Variable #1"},
    }


def mailgun_delivered(email: str) -> dict[str, Any]:
    return {
        "event": "delivered",
        "id": "CPgfbmQMTCKtHW6uIWtuVe",
        "timestamp": 1521472262.908181,
        "recipient": email,
        "delivery-status": {"code": 250, "message": "OK"},
    }


def mailgun_body(
    signing_key: str,
    event: dict[str, Any],
    timestamp: int | None = None,
    token: str | None = None,
) -> bytes:
    timestamp_text = str(int(time.time()) if timestamp is None else timestamp)
    token = token or secrets.token_hex(25)
    digest = hmac.new(
        signing_key.encode(), (timestamp_text + token).encode(), hashlib.sha256
    ).hexdigest()
    signature = {"timestamp": timestamp_text, "token": token, "signature": digest}
    return json.dumps({"signature": signature, "event-data": event}).encode()


# -- Postmark: the Bounce, SpamComplaint and Delivery webhook examples --------------------


def postmark_bounce(email: str, bounce_type: str = "HardBounce", code: int = 1) -> dict[str, Any]:
    return {
        "RecordType": "Bounce",
        "MessageStream": "outbound",
        "ID": 4323372036854775807,
        "Type": bounce_type,
        "TypeCode": code,
        "Name": "Hard bounce",
        "Tag": "Test",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Metadata": {"a_key": "a_value", "b_key": "b_value"},
        "ServerID": 23,
        "Description": "The server was unable to deliver your message (ex: unknown user, "
        "mailbox not found).",
        "Details": "Test bounce details",
        "Email": email,
        "From": "sender@example.com",
        "BouncedAt": "2019-11-05T16:33:54.9070259Z",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": True,
        "Subject": "Test subject",
        "Content": "<Full dump of bounce>",
    }


def postmark_spam_complaint(email: str) -> dict[str, Any]:
    return {
        **postmark_bounce(email, "SpamComplaint", 100001),
        "RecordType": "SpamComplaint",
        "Name": "Spam complaint",
        "Details": "Test spam complaint details",
    }


def postmark_delivery(email: str) -> dict[str, Any]:
    return {
        "RecordType": "Delivery",
        "ServerID": 23,
        "MessageStream": "outbound",
        "MessageID": "00000000-0000-0000-0000-000000000000",
        "Recipient": email,
        "Tag": "welcome-email",
        "DeliveredAt": "2019-11-05T16:33:54.9070259Z",
        "Details": "Test delivery webhook details",
        "Metadata": {"a_key": "a_value", "b_key": "b_value"},
    }


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
