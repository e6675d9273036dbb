"""Reading received reports (herald.mail.reports): RFC 3464 and RFC 5965 examples, and
bounces written as common servers write them, each recognised and classified as a user of
the bounce list expects."""

from __future__ import annotations

from pathlib import Path

import pytest

from herald.mail import reports
from herald.mail.classify import is_hard
from herald.mail.reports import Kind, parse_report
from tests.bounces.hostile import CHARSET_WITH_NUL, nested

SAMPLES = Path(__file__).parent / "samples"


def parsed(name: str):
    return parse_report((SAMPLES / name).read_bytes())


# (sample, kind, {failed address: hard?})
BOUNCES = [
    ("rfc3464_simple.eml", Kind.BOUNCE, {"louisl@larry.slip.umd.edu": False}),  # 4.0.0 expired
    (
        "rfc3464_multi.eml",
        Kind.BOUNCE,
        # the delayed recipient is not a failure; "not a registered gateway user" is unknown
        {"arathib@vnet.ibm.com": False, "wsnell@sdcc13.ucsd.edu": True},
    ),
    ("postfix_user_unknown.eml", Kind.BOUNCE, {"nobody@recipient.example": True}),
    ("postfix_mailbox_full.eml", Kind.BOUNCE, {"full@recipient.example": False}),
    ("exim_unrouteable.eml", Kind.BOUNCE, {"gone@no-such-domain.example": True}),
    ("sendmail_user_unknown.eml", Kind.BOUNCE, {"jsmith@recipient.example": True}),
    ("qmail_no_mailbox.eml", Kind.BOUNCE, {"olduser@recipient.example": True}),
    ("o365_recipient_not_found.eml", Kind.BOUNCE, {"pat@contoso.example": True}),
    ("gmail_no_such_account.eml", Kind.BOUNCE, {"nobody.here@gmail.com": True}),
    ("gmail_over_quota.eml", Kind.BOUNCE, {"busy.person@gmail.com": False}),
    ("yahoo_no_account.eml", Kind.BOUNCE, {"gone.user@yahoo.com": True}),
    ("ses_dsn_blocked.eml", Kind.BOUNCE, {"someone@blocking.example": False}),
    ("null_mx.eml", Kind.BOUNCE, {"person@nomail.example": True}),
    ("expired_after_retries.eml", Kind.BOUNCE, {"late@slow.example": False}),
]


@pytest.mark.parametrize(("name", "kind", "failed"), BOUNCES, ids=[b[0] for b in BOUNCES])
def test_bounces_of_common_servers_are_recognised_and_classified(name, kind, failed):
    report = parsed(name)
    assert report.kind is kind, report.reason
    got = {r.email.lower(): r.hard for r in report.recipients}
    assert got == {email.lower(): hard for email, hard in failed.items()}
    assert all(r.diagnostic for r in report.recipients)  # the reason is kept


def test_a_dsn_keeps_its_status_code_and_the_servers_words():
    report = parsed("postfix_user_unknown.eml")
    (recipient,) = report.recipients
    assert recipient.status == "5.1.1"
    assert "User unknown in virtual mailbox table" in recipient.diagnostic
    # the original message's Message-ID, from its quoted headers, for matching
    assert report.message_ids[0] == "<horiginalmessageidnotherald@sender.example>"


def test_the_original_message_id_is_found_in_a_non_standard_bounce_too():
    assert "<horiginalfromexim@sender.example>" in parsed("exim_unrouteable.eml").message_ids


def test_a_feedback_report_is_a_complaint_about_its_recipient():
    report = parsed("rfc5965_arf.eml")
    assert report.kind is Kind.COMPLAINT
    assert [r.email for r in report.recipients] == ["user@example.com"]
    assert "abuse" in report.reason


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("rfc3464_delayed.eml", "delay"),  # Action: delayed, even with Auto-Submitted
        ("out_of_office.eml", "auto-reply"),
        ("vacation_plain.eml", "auto-reply"),
        ("challenge_response.eml", "auto-reply"),
        ("arf_not_spam.eml", "not a complaint"),
        ("unrelated.eml", "not recognised"),
    ],
)
def test_delay_notices_auto_replies_and_other_mail_are_ignored(name, words):
    report = parsed(name)
    assert report.kind is Kind.IGNORED
    assert words in report.reason.lower()


def test_a_real_dsn_marked_auto_replied_stays_a_bounce():
    raw = (SAMPLES / "postfix_user_unknown.eml").read_bytes()
    assert b"Auto-Submitted: auto-replied" in raw
    assert parse_report(raw).kind is Kind.BOUNCE


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff\xfe garbage",
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n--x--",
        b"Content-Type: multipart/report; boundary=\r\n\r\n",
        b"Content-Type: message/delivery-status\r\n\r\nAction: failed\r\n",
    ],
)
def test_malformed_mail_is_ignored_never_an_error(raw):
    report = parse_report(raw)
    assert report.kind in (Kind.IGNORED, Kind.BOUNCE)


def test_a_charset_whose_name_holds_a_nul_is_read_as_utf8():
    report = parse_report(CHARSET_WITH_NUL)
    assert (report.kind, report.reason) == (
        Kind.IGNORED,
        "Not recognised as a bounce or a complaint.",
    )


def test_whatever_fails_while_reading_a_message_makes_it_ignored_as_unreadable(monkeypatch):
    def broken(raw: bytes):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(reports, "read_message", broken)
    report = parse_report((SAMPLES / "postfix_user_unknown.eml").read_bytes())
    assert (report.kind, report.reason) == (Kind.IGNORED, "Unreadable message (RecursionError).")


def test_a_report_nested_within_the_limits_is_still_read():
    dsn = (SAMPLES / "postfix_user_unknown.eml").read_bytes()
    report = parse_report(nested(reports.MAX_CONTAINERS - 2, dsn.replace(b"\n", b"\r\n")))
    assert report.kind is Kind.BOUNCE
    assert [r.email for r in report.recipients] == ["nobody@recipient.example"]


def test_only_the_first_256_kib_are_read():
    dsn = (SAMPLES / "postfix_user_unknown.eml").read_bytes()
    line = b"y" * 998 + b"\n"
    # a 10 MB original quoted after the report's parts: the report is read
    report = parse_report(dsn + line * 10_000)
    assert [r.email for r in report.recipients] == ["nobody@recipient.example"]

    def after_a_first_part_of(lines: int) -> bytes:
        first = dsn.index(b"--4C2B31E2A5")
        part = b"--4C2B31E2A5.1765098764/mx1.sender.example\n\n" + line * lines
        return dsn[:first] + part + dsn[first:]

    assert parse_report(after_a_first_part_of(100)).kind is Kind.BOUNCE
    assert parse_report(after_a_first_part_of(300)).kind is Kind.IGNORED  # never reached


@pytest.mark.parametrize(
    ("status", "words", "hard"),
    [
        ("5.1.1", "User unknown", True),
        ("5.1.2", "Host unknown", True),
        ("5.1.10", "null MX", True),
        ("5.4.4", "Unable to route", True),
        ("5.1.6", "Mailbox has moved", True),
        ("5.2.2", "Mailbox full", False),
        ("5.3.4", "Message too big", False),
        ("5.7.1", "Rejected by policy: spam", False),
        ("5.7.1", "Recipient address rejected: User unknown in relay recipient table", True),
        ("5.4.1", "Recipient address rejected: Access denied. AS(201806281)", True),
        ("5.0.0", "550 5.0.0 no such user here", True),
        ("5.5.0", "550 Requested action not taken: mailbox unavailable", True),
        ("4.2.2", "Mailbox full, try later", False),
        ("4.4.7", "Delivery time expired", False),
        (None, "551 User not local; please try <x@y.example>", True),
        (None, "452 Too many recipients", False),
        (None, "The account has been disabled", True),
        (None, "Message rejected as spam", False),
    ],
)
def test_hard_or_soft(status, words, hard):
    assert is_hard(status, words) is hard
