"""Hard or soft: whether a failed delivery means the address cannot receive mail at all.

Hard: unknown user, unknown domain or no mail host, address moved, null MX, account
disabled. Soft: everything else (mailbox full, blocked, spam-filtered, policy, message too
large, expired after retries, temporary errors). The enhanced status code (RFC 3463) decides
when it is specific; the server's words decide for the generic codes (5.0.0, 5.5.x, 5.7.x,
5.4.1...), which servers use for anything, unknown users included.
"""

from __future__ import annotations

import re

# RFC 3463 codes that name the address itself (RFC 7505 5.1.10: null MX).
_HARD_CODES = frozenset(
    {"5.1.0", "5.1.1", "5.1.2", "5.1.3", "5.1.4", "5.1.6", "5.1.10", "5.2.1", "5.4.4"}
)
# Codes whose meaning is never the address: the mailbox is full, the message too big...
_SOFT_CODES = frozenset({"5.2.2", "5.2.3", "5.3.4", "5.4.6", "5.4.7", "5.1.7", "5.1.8"})
# Generic codes: the words decide.
STATUS_CODE = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
REPLY_CODE = re.compile(r"(?<![\d.])([245]\d\d)(?:[ -]|$)")

HARD_WORDS = re.compile(
    r"user unknown|unknown user|unknown recipient|recipient unknown|no such (?:user|mailbox|"
    r"recipient|address|account|domain|person)|user(?:name)? (?:does not exist|not found|"
    r"doesn'?t exist)|mailbox (?:does not exist|not found|doesn'?t exist|unknown|is "
    r"inactive|has been disabled|disabled)|(?:address|recipient|account|user|mailbox) "
    r"(?:does not exist|doesn'?t exist)|recipient (?:address )?rejected: (?:user unknown|"
    r"undeliverable address|access denied)|invalid (?:recipient|mailbox|address)|"
    r"not a valid (?:mailbox|user|recipient|address)|bad destination mailbox|"
    r"recipientnotfound|recipnotfound|recipient not found|unrouteable address|"
    r"unroutable address|host (?:or domain name )?not found|domain (?:not found|does not "
    r"exist|doesn'?t exist|name not found)|unknown (?:domain|host|local[- ]part)|"
    r"no mx (?:record|host)|null mx|nxdomain|name or service not known|"
    r"account (?:has been |is )?(?:disabled|closed|deleted|suspended|terminated|inactive)|"
    r"(?:address|mailbox|account) (?:is )?no longer (?:valid|active|available|in use)|"
    r"user (?:is )?(?:disabled|inactive|suspended)|has (?:been )?moved|"
    r"no longer (?:with|at|employed)|not our customer|not listed in|"
    r"addressee unknown|unknown address|no mailbox here|mailbox unavailable|"
    r"mailbox not available|no such local user|recipient address rejected: undeliverable|"
    r"destination (?:address|mailbox) (?:is )?invalid|"
    r"(?:does not|doesn'?t) have an? (?:[\w.-]+ )?account",
    re.IGNORECASE,
)
# Words that say the failure was temporary or the address fine: they outweigh the words
# of an unknown address ("Host not found, try again" is a DNS hiccup, not a dead domain).
TEMPORARY_WORDS = re.compile(
    r"try (?:again|to resend)|temporar|transient|quota|(?:is|was) full|mail ?folder is full|"
    r"timed? ?out|expired|aborted after \d|\d+ attempts|will (?:be )?retr|not reachable|"
    r"unreachable|queue period|command died|not accepting mail",
    re.IGNORECASE,
)
SOFT_WORDS = re.compile(
    r"quota|mailbox (?:is )?full|over ?quota|insufficient (?:storage|space)|storage "
    r"(?:allocation|limit)|too (?:large|big)|size limit|message size|spam|junk|"
    r"block(?:ed|list)|blacklist|denylist|reputation|policy|poli?cies|rejected for "
    r"security|rate limit|too many|try (?:again )?later|temporar|deferred|greylist|"
    r"graylist|timed? ?out|connection (?:refused|reset|lost)|expired|retry time|"
    r"could not be delivered within|relay (?:access )?denied|not permitted|"
    r"authentication|dmarc|spf|dkim|virus|content|not accepting mail|loop|too many hops|"
    r"not reachable|unreachable|queue period|command died|try to resend|\d+ attempts",
    re.IGNORECASE,
)


def status_code(text: str) -> str | None:
    """The first enhanced status code (``5.1.1``) in ``text``, or None."""
    found = STATUS_CODE.search(text)
    return ".".join(found.groups()) if found else None


def is_hard(status: str | None, diagnostic: str) -> bool:
    """Hard (True) or soft (False) for one failed recipient.

    ``status`` is the DSN's Status field (or a code found in the diagnostic), ``diagnostic``
    the server's words (the DSN's Diagnostic-Code, or the text around the address).
    """
    code = status or status_code(diagnostic)
    if code is not None:
        if code.startswith("4."):
            return False  # temporary, even if it expired after retries
        if code in _HARD_CODES:
            return HARD_WORDS.search(diagnostic) is not None or not SOFT_WORDS.search(diagnostic)
        if code in _SOFT_CODES:
            return False
    reply = REPLY_CODE.search(diagnostic)
    if reply is not None and reply.group(1).startswith("4") and code is None:
        return False
    if reply is not None and reply.group(1) == "551":  # user not local: moved
        return True
    if TEMPORARY_WORDS.search(diagnostic):
        return False
    return HARD_WORDS.search(diagnostic) is not None
