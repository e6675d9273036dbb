"""What a received report says: a bounce (who failed, hard or soft, why), a complaint, or
something to ignore (a delay notice, an auto-reply, anything unrecognised).

Standard reports are read with the standard library: RFC 3464 delivery status
notifications (``multipart/report; report-type=delivery-status``) and RFC 5965 feedback
reports (``report-type=feedback-report``). Other mail servers' bounces are found by
Mailman's ``flufl.bounce``, and classified from the words around each failed address.
Pure: no database; ``herald.bounces`` matches and applies what this finds.

Anyone can send Herald mail, so reading one is bounded: only its first 256 KiB are read
(a report says what it is near its start), a message nesting more than a few dozen
multipart or message parts is not parsed at all (the standard library's parser slows with
the square of the depth), and one of more than 100 parts is not searched for bounces.
"""

from __future__ import annotations

import enum
import logging
import re
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.message import Message

from flufl.bounce import all_failures

from herald.log import get_logger
from herald.mail.classify import (
    HARD_WORDS,
    REPLY_CODE,
    SOFT_WORDS,
    STATUS_CODE,
    is_hard,
    status_code,
)
from herald.mail.reportmime import read_headers, read_message
from herald.text import MAX_REASON, one_line

# flufl.bounce logs every detector it runs at INFO, and a detector's failure with its
# traceback at ERROR before raising it to us: we log that failure once, in one line.
logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)
log = get_logger("herald.reports")

MAX_PARSED_BYTES = 256 * 1024
MAX_CONTAINERS = 32  # multipart and message/* parts of one message; real reports nest ~5
MAX_PARTS = 100
MAX_RECIPIENTS = 100  # Herald's messages have one recipient each; a report names a few
_CONTAINER = re.compile(rb"^content-type[ \t]*:\s*(?:multipart|message)/", re.I | re.M)


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
    """Read one received mail message. Never raises, whatever the mail: what cannot be
    read is IGNORED with the reason (the caller keeps the message as received)."""
    head = raw[:MAX_PARSED_BYTES]
    if len(_CONTAINER.findall(head)) > MAX_CONTAINERS:
        return ParsedReport(Kind.IGNORED, reason="Too many nested MIME parts to be a report.")
    try:
        return _parse(head)
    except Exception as exc:  # odd mail the parsers choke on (a charset "x\0y"...) is junk
        log.warning("report.unreadable", error=type(exc).__name__)
        return ParsedReport(Kind.IGNORED, reason=f"Unreadable message ({type(exc).__name__}).")


def _parse(raw: bytes) -> ParsedReport:
    message = read_message(raw)
    if len(_parts(message)) > MAX_PARTS:
        return ParsedReport(Kind.IGNORED, reason="Too many MIME parts to be a report.")
    subject = _header(message, "Subject")
    feedback = _first_part(message, ("message/feedback-report",))
    if feedback is not None:
        return _with_subject(_feedback_report(message, feedback), subject)
    status = _first_part(message, _DELIVERY_STATUS)
    if status is not None:
        return _with_subject(_delivery_status(message, status, raw), subject)
    return _with_subject(_non_standard(message, raw), subject)


def _with_subject(report: ParsedReport, subject: str) -> ParsedReport:
    return ParsedReport(report.kind, report.recipients, report.message_ids, report.reason, subject)


# --- RFC 3464 ---------------------------------------------------------------------------

_DELIVERY_STATUS = ("message/delivery-status", "message/global-delivery-status")
_ORIGINAL = ("message/rfc822", "text/rfc822-headers", "message/global", "message/global-headers")


def _delivery_status(message: Message, part: Message, raw: bytes) -> ParsedReport:
    blocks = _field_blocks(part)
    recipients = blocks[1:] if len(blocks) > 1 else blocks
    failed: dict[str, Recipient] = {}
    actions: set[str] = set()
    text = _body_text(message)
    for fields in recipients:
        action = fields.get("action", "").strip().lower()
        actions.add(action.split(" ")[0])
        if not action.startswith(("failed", "failure", "error")):
            continue
        email = _recipient(fields)
        if not email or email.lower() in failed or len(failed) >= MAX_RECIPIENTS:
            continue
        status = fields.get("status", "").strip()
        found = status_code(status)
        diagnostic = one_line(fields.get("diagnostic-code", ""))
        diagnostic = diagnostic.partition(";")[2].strip() or diagnostic
        if not diagnostic:
            # "5.0.0 (recipient reached disk quota)", and what the text says of the address
            diagnostic = " ".join(filter(None, (status, _near(email, text))))
        elif not found and status:  # "553 Exceeded maximum inbound message size"
            diagnostic = f"{status} {diagnostic}"
        failed[email.lower()] = Recipient(
            email, is_hard(found, diagnostic), found, diagnostic[:MAX_REASON]
        )
    ids = _message_ids(message)
    if failed:
        return ParsedReport(
            Kind.BOUNCE, tuple(failed.values()), ids, "Delivery status notification."
        )
    if not actions & {"delayed", "delivered", "relayed", "expanded"}:
        # a malformed report (no usable recipient fields): read as other servers' bounces
        return _non_standard(message, raw)
    if "delayed" in actions:
        reason = "A delay notice (Action: delayed): the server is still trying."
    elif actions & {"delivered", "relayed", "expanded"}:
        reason = "A delivery report of success (Action: " + ", ".join(sorted(actions)) + ")."
    else:
        reason = "A delivery status notification without a failed recipient."
    return ParsedReport(Kind.IGNORED, (), ids, reason)


def _recipient(fields: dict[str, str]) -> str:
    """Original-Recipient (the address as the sender gave it) when it is an Internet
    address, else Final-Recipient (gateways put their own forms in either)."""
    for name in ("original-recipient", "final-recipient"):
        email = _address_field(fields.get(name))
        if "@" in email and " " not in email:
            return email
    return ""


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
            parsed = read_headers(chunk.strip() + "\n")
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
    r"rejected|returned to sender|bounce|mail error",
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
        except Exception as exc:  # a detector failing on odd mail: no bounce found by it
            log.warning("report.detector_failed", error=type(exc).__name__)
            temporary, permanent = frozenset(), frozenset()
        text = _body_text(message)
        if (temporary or permanent) and not permanent and _WARNING.search(one_line(text)):
            return ParsedReport(
                Kind.IGNORED, (), ids, "A delay notice: the server is still trying."
            )
        if temporary or permanent:
            found = [
                _classified(_decoded(address), text, permanent=address in permanent)
                for address in sorted(temporary | permanent)[:MAX_RECIPIENTS]
            ]
            return ParsedReport(Kind.BOUNCE, tuple(found), ids, "A non-standard bounce.")
        if from_mail_system and not auto_reply and _FAILED.search(one_line(text)):
            # a bounce that names no address: its return path's tag still finds the send
            whole = one_line(text)
            reason = _evidence_sentence(whole) if _evidence(whole) else "Undeliverable."
            failure = Recipient("", is_hard(status_code(reason), reason), None, reason)
            return ParsedReport(Kind.BOUNCE, (failure,), ids, "A bounce naming no address.")
    if auto_reply:
        return ParsedReport(Kind.IGNORED, (), ids, "An auto-reply, not a delivery report.")
    return ParsedReport(Kind.IGNORED, (), ids, "Not recognised as a bounce or a complaint.")


# A warning that delivery is still being tried (a delay notice in words, not a DSN)
_WARNING = re.compile(
    r"warning|not yet been delivered|has been delayed|has been postponed|will continue|"
    r"will be retried|(?:do not|don't) (?:need to )?resend|no action is required|"
    r"still (?:trying|being tried)",
    re.IGNORECASE,
)
# What a mail system says when it gives up on a message
_FAILED = re.compile(
    r"could not be delivered|couldn't be delivered|not (?:be )?delivered|undeliverable|"
    r"delivery (?:has )?failed|failed (?:permanently|recipient)|permanent (?:fatal )?error|"
    r"returned to sender",
    re.IGNORECASE,
)


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
    """A non-standard bounce's recipient, judged by the words near its address, else by
    the whole report's. Without a code or words to go by at all, a failure that
    flufl.bounce deems permanent is hard (servers that say nothing mostly mean an unknown
    user), a temporary one soft."""
    diagnostic = _near(email, text)
    if not _evidence(diagnostic):
        whole = one_line(text)
        if _evidence(whole):
            diagnostic = " ".join(filter(None, (diagnostic, _evidence_sentence(whole))))
    found = status_code(diagnostic)
    hard = is_hard(found, diagnostic) if _evidence(diagnostic) else permanent
    return Recipient(email, hard, found, one_line(diagnostic)[:MAX_REASON] or "Undeliverable.")


def _evidence(text: str) -> bool:
    """Whether ``text`` says why: a status or reply code, or words of the classifier."""
    return bool(text) and (
        STATUS_CODE.search(text) is not None
        or REPLY_CODE.search(text) is not None
        or HARD_WORDS.search(text) is not None
        or SOFT_WORDS.search(text) is not None
    )


def _evidence_sentence(text: str) -> str:
    """The part of a long text around its first code or classifier word."""
    found = [
        m.start()
        for m in (
            STATUS_CODE.search(text),
            REPLY_CODE.search(text),
            HARD_WORDS.search(text),
            SOFT_WORDS.search(text),
        )
        if m is not None
    ]
    start = max(min(found) - 80, 0)
    return text[start : start + 300]


_SEPARATOR = re.compile(r"^\s*(?:-{3,}|={3,}|_{3,}|\*{3,})")


def _near(email: str, text: str) -> str:
    """The address's line and the few after it, up to a separator or the second blank
    line: where servers put the reason for that address."""
    index = text.lower().find(email.lower())
    if index < 0:
        return ""
    start = text.rfind("\n", 0, index) + 1
    picked: list[str] = []
    blanks = 0
    for line in text[start:].splitlines()[:8]:
        if picked and _SEPARATOR.match(line):
            break
        if not line.strip():
            blanks += 1
            if blanks >= 2 or (picked and _evidence(" ".join(picked))):
                break
            continue
        picked.append(line.strip())
    return " ".join(picked)


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
    for part, content_type, _quoted in _parts(message):
        if content_type.startswith("text/"):
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
    return read_headers(text) if text else None


_Part = tuple[Message, str, bool]  # the part, its content type, inside a quoted original?


def _parts(message: Message) -> list[_Part]:
    """Every part once, in order, up to one past MAX_PARTS (the report is read several
    ways; this walk is done once)."""
    cached: list[_Part] | None = getattr(message, "_herald_parts", None)
    if cached is not None:
        return cached
    found: list[_Part] = []

    def visit(part: Message, quoted: bool) -> None:
        if len(found) > MAX_PARTS:
            return
        content_type = part.get_content_type()
        found.append((part, content_type, quoted))
        payload = part.get_payload() if part.is_multipart() or content_type in _ORIGINAL else None
        if isinstance(payload, list):
            inner = quoted or content_type in _ORIGINAL
            for child in payload:
                if isinstance(child, Message):
                    visit(child, inner)

    visit(message, False)
    message._herald_parts = found  # type: ignore[attr-defined]
    return found


def _first_part(message: Message, types: tuple[str, ...]) -> Message | None:
    for part, content_type, _quoted in _parts(message):
        if content_type in types:
            return part
    return None


def _body_text(message: Message) -> str:
    """The text parts of the report itself, not those of the original message it quotes."""
    return "\n".join(
        _text_of(part)
        for part, content_type, quoted in _parts(message)
        if content_type.startswith("text/") and not quoted
    )


def _text_of(part: Message) -> str:
    cached: str | None = getattr(part, "_herald_text", None)
    if cached is not None:
        return cached
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        value = part.get_payload()
        text = value if isinstance(value, str) else ""
    else:
        charset = part.get_content_charset() or "utf-8"
        try:
            text = payload.decode(charset, "replace")
        except (LookupError, ValueError):  # an unknown charset, or a name with a NUL in it
            text = payload.decode("utf-8", "replace")
    part._herald_text = text  # type: ignore[attr-defined]
    return text


def _header(message: Message, name: str) -> str:
    value = message.get(name)
    if value is None:
        return ""
    text = str(value)
    if "=?" not in text:  # no encoded words (RFC 2047): as it is, and decoding costs
        return text
    try:
        return str(make_header(decode_header(text)))
    except (ValueError, LookupError, UnicodeError):
        return text


def _address_field(value: str | None) -> str:
    """``rfc822; user@example.com`` or a To header -> ``user@example.com``."""
    if not value:
        return ""
    value = one_line(value)
    if ";" in value:
        value = value.partition(";")[2]
    angle = _ANGLE_ID.search(value)
    if angle:
        return angle.group(1).strip()
    return value.strip().strip("<>").strip()


def _decoded(address: bytes | str) -> str:
    return address.decode("utf-8", "replace") if isinstance(address, bytes) else address
