"""Amazon SES notifications (delivered by SNS): Bounce and Complaint events.

Both SES formats are read: notifications (``notificationType``) and event publishing
(``eventType``). A Permanent bounce is hard; Transient and Undetermined ones are soft.
"""

from __future__ import annotations

import json
from typing import Any

from herald.bounces.webhooks.events import Kind, ProviderEvent, angle_id, text


def events(message: str) -> list[ProviderEvent]:
    """The bounce and complaint events in the SNS ``Message`` of a notification; [] for
    anything else (deliveries, opens, a message that is not SES's)."""
    try:
        data = json.loads(message)
    except ValueError:
        return []
    if not isinstance(data, dict):
        return []
    kind = data.get("notificationType") or data.get("eventType")
    raw = message.encode()
    mail = _dict(data.get("mail"))
    message_id = _message_id(mail)
    sender = text(mail.get("source"), 320) or None
    if kind == "Bounce":
        bounce = _dict(data.get("bounce"))
        bounce_type = text(bounce.get("bounceType"))
        hard = bounce_type == "Permanent"
        found = []
        for recipient in _list(bounce.get("bouncedRecipients")):
            recipient = _dict(recipient)
            reason = text(recipient.get("diagnosticCode")) or " ".join(
                part
                for part in (
                    bounce_type,
                    text(bounce.get("bounceSubType")),
                    text(recipient.get("status")),
                )
                if part
            )
            found.append(
                ProviderEvent(
                    kind=Kind.HARD if hard else Kind.SOFT,
                    email=text(recipient.get("emailAddress"), 320),
                    reason=reason,
                    raw=raw,
                    message_id=message_id,
                    envelope_sender=sender,
                )
            )
        return [event for event in found if event.email]
    if kind == "Complaint":
        complaint = _dict(data.get("complaint"))
        feedback = text(complaint.get("complaintFeedbackType")) or "complaint"
        return [
            ProviderEvent(
                kind=Kind.COMPLAINT,
                email=email,
                reason=f"Complaint ({feedback})",
                raw=raw,
                message_id=message_id,
                envelope_sender=sender,
            )
            for recipient in _list(complaint.get("complainedRecipients"))
            if (email := text(_dict(recipient).get("emailAddress"), 320))
        ]
    return []


def _message_id(mail: dict[str, Any]) -> str | None:
    """Herald's own Message-ID: SES's ``messageId`` is SES's, the header is ours."""
    common = _dict(mail.get("commonHeaders"))
    if found := angle_id(common.get("messageId")):
        return found
    for header in _list(mail.get("headers")):
        header = _dict(header)
        if text(header.get("name")).lower() == "message-id":
            return angle_id(header.get("value"))
    return None


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []
