"""Amazon SES notifications (delivered by SNS): Bounce and Complaint events.

Both SES formats are read: notifications (``notificationType``) and event publishing
(``eventType``). A Permanent bounce is hard; Transient and Undetermined ones are soft.
"""

from __future__ import annotations

import json
from typing import Any

from herald.bounces.ingest import Event
from herald.bounces.models import ReportType
from herald.bounces.webhooks.events import Reading, angle_id, as_dict, as_list, joined, text


def read(message: str) -> Reading:
    """The bounce and complaint events in the SNS ``Message`` of a notification; none for
    anything else (deliveries, opens, a message that is not SES's)."""
    try:
        data = json.loads(message)
    except ValueError:
        return Reading()
    if not isinstance(data, dict):
        return Reading()
    kind = data.get("notificationType") or data.get("eventType")
    mail = as_dict(data.get("mail"))
    message_id = _message_id(mail)
    if kind == "Bounce":
        events = _bounces(as_dict(data.get("bounce")), message_id)
    elif kind == "Complaint":
        events = _complaints(as_dict(data.get("complaint")), message_id)
    else:
        return Reading()
    return Reading(events, text(mail.get("source"), 320) or None)


def _bounces(bounce: dict[str, Any], message_id: str | None) -> list[Event]:
    bounce_type = text(bounce.get("bounceType"))
    kind = ReportType.HARD if bounce_type == "Permanent" else ReportType.SOFT
    events = []
    for recipient in map(as_dict, as_list(bounce.get("bouncedRecipients"))):
        email = text(recipient.get("emailAddress"), 320)
        status = text(recipient.get("status"), 16) or None
        reason = text(recipient.get("diagnosticCode")) or joined(
            bounce_type, text(bounce.get("bounceSubType")), status or ""
        )
        if email:
            events.append(Event(kind, email, reason, message_id, status))
    return events


def _complaints(complaint: dict[str, Any], message_id: str | None) -> list[Event]:
    feedback = text(complaint.get("complaintFeedbackType")) or "complaint"
    return [
        Event(ReportType.COMPLAINT, email, f"Complaint ({feedback})", message_id)
        for recipient in map(as_dict, as_list(complaint.get("complainedRecipients")))
        if (email := text(recipient.get("emailAddress"), 320))
    ]


def _message_id(mail: dict[str, Any]) -> str | None:
    """Herald's own Message-ID: SES's ``messageId`` is SES's, the header is ours."""
    common = as_dict(mail.get("commonHeaders"))
    if found := angle_id(common.get("messageId")):
        return found
    for header in map(as_dict, as_list(mail.get("headers"))):
        if text(header.get("name")).lower() == "message-id":
            return angle_id(header.get("value"))
    return None
