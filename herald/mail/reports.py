"""What a received report says: a bounce (who failed, hard or soft, why), a complaint, or
something to ignore (a delay notice, an auto-reply, anything unrecognised).

Standard reports are read with the standard library: RFC 3464 delivery status
notifications (``multipart/report; report-type=delivery-status``) and RFC 5965 feedback
reports (``report-type=feedback-report``). Other mail servers' bounces are found by
Mailman's ``flufl.bounce``, and classified from the words around each failed address.
Pure: no database; ``herald.bounces`` matches and applies what this finds.
"""

from __future__ import annotations

import enum
import logging
import re
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from email.parser import HeaderParser

from flufl.bounce import all_failures

from herald.mail.classify import STATUS_CODE, is_hard, status_code

# flufl.bounce logs every detector it runs at INFO
logging.getLogger("flufl.bounce").setLevel(logging.WARNING)

MAX_REASON = 1000


class Kind(enum.StrEnum):
    BOUNCE = "bounce"
    COMPLAINT = "complaint"
    IGNORED = "ignored"


@dataclass(frozen=True)
class Recipient:
    """One recipient a report is about: for a bounce, a failed one."""

    email: str
    hard: bool = False
    status: str | None = None  # the enhanced status code, e.g. 5.1.1
    diagnostic: str = ""  # the server's words, or the complaint's feedback type


@dataclass(frozen=True)
class ParsedReport:
    kind: Kind
    recipients: tuple[Recipient, ...] = ()
    # Message-IDs the report quotes, the original message's first (Herald's own verify)
    message_ids: tuple[str, ...] = ()
    reason: str = ""  # why it is ignored, or what kind of report it was
    subject: str = ""


# --- the entry point --------------------------------------------------------------------


def parse_report(raw: bytes) -> ParsedReport:
    """Read one received mail message. Never raises for malformed mail: what cannot be
    read is IGNORED with the reason."""
    try:
        message = message_from_bytes(raw)
    except Exception as exc:  # the parser is lenient; anything it still fails on is junk
        return ParsedReport(Kind.IGNORED, reason=f"Unreadable message ({type(exc).__name__}).")
    subject = _header(message, "Subject")
    feedback = _first_part(message, ("message/feedback-report",))
    if feedback is not None:
        return _with_subject(_feedback_report(message, feedback), subject)
    status = _first_part(message, _DELIVERY_STATUS)
    if status is not None:
        return _with_subject(_delivery_status(message, status), subject)
    return _with_subject(_non_standard(message, raw), subject)


def _with_subject(report: ParsedReport, subject: str) -> ParsedReport:
    return ParsedReport(report.kind, report.recipients, report.message_ids, report.reason, subject)


# --- RFC 3464 ---------------------------------------------------------------------------

_DELIVERY_STATUS = ("message/delivery-status", "message/global-delivery-status")
_ORIGINAL = ("message/rfc822", "text/rfc822-headers", "message/global", "message/global-headers")


def _delivery_status(message: Message, part: Message) -> ParsedReport:
    blocks = _field_blocks(part)
    recipients = blocks[1:] if len(blocks) > 1 else blocks
    failed: list[Recipient] = []
    actions: set[str] = set()
    for fields in recipients:
        action = fields.get("action", "").strip().lower()
        actions.add(action)
        if action != "failed":
            continue
        email = _address_field(fields.get("final-recipient") or fields.get("original-recipient"))
        status = fields.get("status", "").strip()
        found = status_code(status)
        diagnostic = _one_line(fields.get("diagnostic-code", ""))
        diagnostic = diagnostic.partition(";")[2].strip() or diagnostic
        if not diagnostic:
            diagnostic = _body_text(message)[:MAX_REASON]
        failed.append(Recipient(email, is_hard(found, diagnostic), found, diagnostic))
    ids = _message_ids(message)
    if failed:
        return ParsedReport(Kind.BOUNCE, tuple(failed), ids, "Delivery status notification.")
    if "delayed" in actions:
        reason = "A delay notice (Action: delayed): the server is still trying."
    elif actions & {"delivered", "relayed", "expanded"}:
        reason = "A delivery report of success (Action: " + ", ".join(sorted(actions)) + ")."
    else:
        reason = "A delivery status notification without a failed recipient."
    return ParsedReport(Kind.IGNORED, (), ids, reason)


def _field_blocks(part: Message) -> list[dict[str, str]]:
    """The header blocks of a delivery-status (or feedback-report) part, lower-case names."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [
            {k.lower(): str(v) for k, v in block.items()}
            for block in payload
            if isinstance(block, Message)
        ]
    text = part.get_payload(decode=True) or b""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    blocks = []
    for chunk in re.split(r"\r?\n\s*\r?\n", str(text)):
        if chunk.strip():
            parsed = HeaderParser().parsestr(chunk.strip() + "\n")
            blocks.append({k.lower(): str(v) for k, v in parsed.items()})
    return blocks


# --- RFC 5965 ---------------------------------------------------------------------------

# Feedback types that are not a person calling the mail spam (RFC 6430, 6591)
_NOT_COMPLAINTS = frozenset({"not-spam", "virus", "auth-failure", "dkim", "dmarc"})


def _feedback_report(message: Message, part: Message) -> ParsedReport:
    blocks = _field_blocks(part)
    fields = blocks[0] if blocks else {}
    feedback_type = fields.get("feedback-type", "abuse").strip().lower() or "abuse"
    ids = _message_ids(message)
    original = _original(message)
    email = _address_field(fields.get("original-rcpt-to"))
    if not email and original is not None:
        email = _address_field(_header(original, "To"))
    if feedback_type in _NOT_COMPLAINTS:
        return ParsedReport(
            Kind.IGNORED,
            (Recipient(email, diagnostic=feedback_type),) if email else (),
            ids,
            f"A feedback report of type {feedback_type}: not a complaint.",
        )
    return ParsedReport(
        Kind.COMPLAINT,
        (Recipient(email, diagnostic=f"Feedback-Type: {feedback_type}"),),
        ids,
        f"A feedback report (Feedback-Type: {feedback_type}).",
    )


# --- everything else --------------------------------------------------------------------

_AUTO_REPLY_SUBJECT = re.compile(
    r"out of (?:the )?office|automatic reply|auto[- ]?reply|autoresponse|auto[- ]?response|"
    r"vacation|away from (?:the|my) office|abwesenheit|réponse automatique|"
    r"risposta automatica|respuesta automática|resposta automática|automatisch antwoord|"
    r"afwezig|fuera de la oficina|please confirm|verify your (?:email|address)|"
    r"challenge|is requesting confirmation",
    re.IGNORECASE,
)
_MAIL_SYSTEM_SENDER = re.compile(
    r"mailer-daemon|postmaster|mail delivery (?:sub)?system|mail administrator|"
    r"mailer_daemon|mdaemon|mailerdaemon",
    re.IGNORECASE,
)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery (?:status notification|failure|failed|has failed|"
    r"problem)|returned mail|mail delivery failed|failure notice|could not be delivered|"
    r"non[- ]?delivery|nondeliverable|delivery notification|mail system error|"
    r"rejected|returned to sender|bounce",
    re.IGNORECASE,
)
_AUTO_REPLY_HEADERS = ("x-autoreply", "x-autorespond", "x-autoresponder", "x-vacation")


def _non_standard(message: Message, raw: bytes) -> ParsedReport:
    ids = _message_ids(message)
    auto_reply = _looks_like_auto_reply(message)
    from_mail_system = _looks_like_mail_system(message)
    if not auto_reply or from_mail_system:
        try:
            temporary, permanent = all_failures(message)
        except Exception:  # a detector failing on odd mail: no bounce found by it
            temporary, permanent = frozenset(), frozenset()
        if temporary or permanent:
            text = _body_text(message)
            found = [
                _classified(_decoded(address), text, permanent=address in permanent)
                for address in sorted(temporary | permanent)
            ]
            return ParsedReport(Kind.BOUNCE, tuple(found), ids, "A non-standard bounce.")
    if auto_reply:
        return ParsedReport(Kind.IGNORED, (), ids, "An auto-reply, not a delivery report.")
    return ParsedReport(Kind.IGNORED, (), ids, "Not recognised as a bounce or a complaint.")


def _looks_like_auto_reply(message: Message) -> bool:
    submitted = _header(message, "Auto-Submitted").lower()
    if submitted.startswith("auto-replied"):
        return True
    if any(message.get(name) is not None for name in _AUTO_REPLY_HEADERS):
        return True
    precedence = _header(message, "Precedence").lower()
    if precedence in ("auto_reply", "auto-reply"):
        return True
    return _AUTO_REPLY_SUBJECT.search(_header(message, "Subject")) is not None


def _looks_like_mail_system(message: Message) -> bool:
    return bool(
        _MAIL_SYSTEM_SENDER.search(_header(message, "From"))
        or _BOUNCE_SUBJECT.search(_header(message, "Subject"))
    )


def _classified(email: str, text: str, *, permanent: bool) -> Recipient:
    """A non-standard bounce's recipient, judged by the words near its address (else the
    whole text). Without a code or words to go by, a failure that flufl.bounce deems
    permanent is hard."""
    diagnostic = _near(email, text) or text[:MAX_REASON]
    found = status_code(diagnostic)
    hard = is_hard(found, diagnostic)
    if not hard and found is None and permanent and not _has_reason(diagnostic):
        hard = True
    if not permanent and found is None:
        hard = False
    return Recipient(email, hard, found, _one_line(diagnostic)[:MAX_REASON])


def _has_reason(text: str) -> bool:
    return STATUS_CODE.search(text) is not None or re.search(r"\b[45]\d\d\b", text) is not None


def _near(email: str, text: str) -> str:
    """The lines from the address's first mention to the next blank line (a few at most):
    where servers put the reason for that address."""
    index = text.lower().find(email.lower())
    if index < 0:
        return ""
    start = text.rfind("\n", 0, index) + 1
    lines = text[start:].splitlines()
    picked: list[str] = []
    for line in lines[:8]:
        if picked and not line.strip():
            break
        picked.append(line.strip())
    return " ".join(part for part in picked if part)


# --- common pieces ----------------------------------------------------------------------

_MESSAGE_ID_LINE = re.compile(r"^\s*Message-ID:\s*(<[^<>\s]+>)", re.IGNORECASE | re.MULTILINE)
_ANGLE_ID = re.compile(r"<([^<>\s@]+@[^<>\s]+)>")


def _message_ids(message: Message) -> tuple[str, ...]:
    """The original message's Message-ID first, then any the text quotes."""
    found: list[str] = []
    original = _original(message)
    if original is not None:
        value = _header(original, "Message-ID").strip()
        if value:
            found.append(value)
    for part in message.walk():
        if part.get_content_maintype() == "text":
            found.extend(_MESSAGE_ID_LINE.findall(_text_of(part)))
    own = _header(message, "Message-ID").strip()
    return tuple(dict.fromkeys(i for i in found if i and i != own))


def _original(message: Message) -> Message | None:
    part = _first_part(message, _ORIGINAL)
    if part is None:
        return None
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return payload[0]
    text = _text_of(part)
    return HeaderParser().parsestr(text) if text else None


def _first_part(message: Message, types: tuple[str, ...]) -> Message | None:
    for part in message.walk():
        if part.get_content_type() in types:
            return part
    return None


def _body_text(message: Message) -> str:
    """The text parts of the report itself, not those of the original message it quotes."""
    texts: list[str] = []

    def visit(part: Message) -> None:
        if part.get_content_type() in _ORIGINAL:
            return
        if part.is_multipart():
            for child in part.get_payload():
                if isinstance(child, Message):
                    visit(child)
        elif part.get_content_maintype() == "text":
            texts.append(_text_of(part))

    visit(message)
    return "\n".join(texts)


def _text_of(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        value = part.get_payload()
        return value if isinstance(value, str) else ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, "replace")
    except LookupError:
        return payload.decode("utf-8", "replace")


def _header(message: Message, name: str) -> str:
    value = message.get(name)
    if value is None:
        return ""
    try:
        from email.header import decode_header, make_header

        return str(make_header(decode_header(str(value))))
    except (ValueError, LookupError, UnicodeError):
        return str(value)


def _address_field(value: str | None) -> str:
    """``rfc822; user@example.com`` or a To header -> ``user@example.com``."""
    if not value:
        return ""
    value = _one_line(value)
    if ";" in value:
        value = value.partition(";")[2]
    angle = _ANGLE_ID.search(value)
    if angle:
        return angle.group(1).strip()
    return value.strip().strip("<>").strip()


def _decoded(address: bytes | str) -> str:
    return address.decode("utf-8", "replace") if isinstance(address, bytes) else address


def _one_line(value: str) -> str:
    return " ".join(str(value).split())
