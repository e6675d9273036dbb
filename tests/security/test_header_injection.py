"""Header injection: line breaks in the one-line campaign fields are refused at save, and
hostile contact values, encoded-word tricks and display names full of quotes, commas and
brackets reach a real SMTP server as text in one header, never as a new header or recipient."""

from __future__ import annotations

import base64
import json

import pytest

from herald.mail.merge import strip_controls
from tests.marketing.engine import add_contacts
from tests.marketing.factories import assert_field_error, campaign_body
from tests.security.hostile import (
    API,
    MESSAGE_HEADERS,
    fresh_admin,
    header_names,
    parse_strictly,
    send_over_smtp,
)
from tests.smtp_server import smtp_server, start_smtp_server  # noqa: F401

admin = pytest.fixture(fresh_admin)

admin = pytest.fixture(fresh_admin)

BREAKS = {
    "crlf": "\r\nBcc: victim@evil.example",
    "cr": "\rBcc: victim@evil.example",
    "lf": "\nBcc: victim@evil.example",
    "trailing-lf": "\n",
    "nul": "\x00Bcc: victim@evil.example",
    "vertical-tab": "\x0bBcc: victim@evil.example",
}
# Line breaks to Unicode, not to RFC 5322: stored as typed, they must still never split a header.
UNICODE_BREAKS = {"line-separator": "\u2028Bcc: victim@evil.example", "nel": "\x85Bcc: v@x.example"}


def json_headers(who) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Raw JSON bodies (json.dumps keeps NUL and lone surrogates as escapes) need the type."""
    return {**who.headers, "content-type": "application/json"}


def _encoded_word(text: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="


ENCODED_CRLF = _encoded_word("x\r\nBcc: victim@evil.example")
ENCODED_HEADER = "=?utf-8?q?x=0D=0ABcc=3A_victim=40evil.example?="
# Stored as typed (they are not C0 controls); sent inside an encoded-word, never splitting it.
SUBJECT = (
    "Hi {{firstName}} {{lastName}} of {{companyName}} \u2028Bcc: a@evil.example " + ENCODED_CRLF
)
FROM_NAME = 'Acme "News",\x85<boss@evil.example> ' + ENCODED_HEADER


def test_control_characters_in_one_line_fields_are_422_naming_the_field(client, admin):
    draft = client.post(f"{API}/campaigns", json=campaign_body(), headers=admin.headers).json()
    for field in ("subject", "fromName", "fromEmail"):
        for value in BREAKS.values():
            value = ("news@acme.example" if field == "fromEmail" else "Spring") + value
            created = client.post(
                f"{API}/campaigns",
                content=json.dumps(campaign_body(**{field: value})),
                headers=json_headers(admin),
            )
            assert_field_error(created, field)
            patched = client.patch(
                f"{API}/campaigns/{draft['id']}",
                content=json.dumps({field: value}),
                headers=json_headers(admin),
            )
            assert_field_error(patched, field)
    stored = client.get(f"{API}/campaigns/{draft['id']}", headers=admin.headers).json()
    assert stored == draft
    listed = client.get(f"{API}/campaigns", headers=admin.headers).json()
    assert listed["total"] == 1


def test_line_breaks_in_the_email_settings_are_422_naming_the_field(client, admin):
    for field in ("defaultFromName", "defaultFromEmail", "username", "host"):
        for name in ("crlf", "cr", "lf", "trailing-lf", "nul"):  # the contract: CR, LF; NUL
            body = {"host": "smtp.example.com", "port": 587, "security": "starttls",
                    "defaultFromName": "Acme", "defaultFromEmail": "news@acme.example",
                    field: "news@acme.example" + BREAKS[name]}  # fmt: skip
            response = client.put(
                "/api/settings/email", content=json.dumps(body), headers=json_headers(admin)
            )
            assert_field_error(response, field)
    assert client.get("/api/settings/email", headers=admin.headers).json()["configured"] is False


def test_line_breaks_in_contact_fields_are_422_naming_the_field(client, admin):
    """Inside a value, a 422; at its end, a line break is trimmed away like other whitespace."""
    for field in ("firstName", "lastName", "companyName", "email"):
        for name, value in BREAKS.items():
            body = {"email": "ann@example.com", field: "ann@example.com" + value}
            response = client.post(
                "/api/crm/contacts", content=json.dumps(body), headers=json_headers(admin)
            )
            if name == "trailing-lf" and response.status_code == 201:
                assert response.json()[field] == "ann@example.com"
                client.delete(f"/api/crm/contacts/{response.json()['id']}", headers=admin.headers)
                continue
            assert_field_error(response, field)
    assert client.get("/api/crm/contacts", headers=admin.headers).json()["total"] == 0


def test_hostile_contact_values_reach_smtp_as_text_in_one_header(
    client,
    runtime,
    smtp_server,  # noqa: F811
    admin,
):
    """Contacts stored before the rules (straight in the database) with CR, LF and other controls in
    their names, and contacts made over the API with quotes, commas, brackets and
    encoded-words: each message has one recipient and exactly the campaign's headers."""
    legacy = {
        "crlf@example.com": ("Bob\r\nBcc: victim@evil.example", "Lee\r\n\r\n<html>"),
        "lf@example.com": ("Bob\nBcc: victim@evil.example\n", "\x1b\x7f"),  # NUL: not in PG
        "cr@example.com": ("Bob\rTo: victim@evil.example", "Lee"),
    }
    for email, (first, last) in legacy.items():
        add_contacts(runtime, admin.org_id, [email], first_name=first, last_name=last)
    via_api = {
        "quotes@example.com": ('Eve" <victim@evil.example>, "Mallory', "<victim2@evil.example>"),
        "commas@example.com": ("victim@evil.example,", "victim3@evil.example; x@y.example"),
        "encoded@example.com": (ENCODED_CRLF, ENCODED_HEADER),
        "unicode@example.com": ("Bob" + UNICODE_BREAKS["line-separator"], UNICODE_BREAKS["nel"]),
        "brackets@example.com": ("(comment) \\ [x]", "<>@:;"),
    }
    companies: dict[str, str] = {}
    for email, (first, last) in list(via_api.items()):
        body = {"email": email, "firstName": first, "lastName": last, "companyName": first}
        created = client.post("/api/crm/contacts", json=body, headers=admin.headers)
        assert created.status_code == 201, created.text
        stored = created.json()  # trimmed, as every stored text (U+0085 is whitespace too)
        via_api[email] = (stored["firstName"], stored["lastName"])
        companies[email] = stored["companyName"]
    names = {**legacy, **via_api}

    received = send_over_smtp(
        client,
        runtime,
        smtp_server,
        admin,
        len(names),
        subject=SUBJECT,
        fromName=FROM_NAME,
        textBody="Hi {{firstName}} {{lastName}}\n{{unsubscribeUrl}}",
    )
    assert smtp_server.errors == []
    assert sorted(m.rcpt_tos[0] for m in received) == sorted(names)
    for message in received:
        (rcpt,) = message.rcpt_tos  # exactly one RCPT TO
        assert message.mail_from == "news@acme.example.com"
        parsed = parse_strictly(message.data)
        assert header_names(message.data) == MESSAGE_HEADERS, rcpt
        assert parsed["Bcc"] is None and parsed["Cc"] is None
        first, last = (strip_controls(v) for v in names[rcpt])
        (to,) = parsed["To"].addresses
        assert to.addr_spec == rcpt
        assert to.display_name == " ".join(f"{first} {last}".split())  # whitespace runs: one space
        (sender,) = parsed["From"].addresses
        assert sender.addr_spec == "news@acme.example.com"
        assert sender.display_name == " ".join(FROM_NAME.split())
        assert str(parsed["Subject"]) == (
            SUBJECT.replace("{{firstName}}", first)
            .replace("{{lastName}}", last)
            .replace("{{companyName}}", companies.get(rcpt, ""))
        )
        text = parsed.get_body(("plain",))
        assert text is not None
        assert text.get_content().startswith(f"Hi {first} {last}".rstrip())
