"""Template injection: engine syntax in a campaign is refused at save naming the placeholder,
or sent as literal text; a contact's value is never merged again, and is escaped in HTML."""

from __future__ import annotations

import html

import pytest

from tests.crm.factories import unique_email
from tests.marketing.factories import assert_field_error, campaign_body
from tests.security.hostile import API, fresh_admin, parse_strictly, send_over_smtp
from tests.smtp_server import smtp_server, start_smtp_server  # noqa: F401

admin = pytest.fixture(fresh_admin)

# Placeholders Herald does not know: 422 naming them and the field.
REFUSED = [
    "{{ 7*7 }}",
    "{{7*7}}",
    "{{config}}",
    "{{ config.items() }}",
    "{{firstName.__class__}}",
    "{{ firstName.__class__.__mro__[1].__subclasses__() }}",
    "{{ self._TemplateReference__context }}",
    "{{ request }}",
    "{{ lipsum.__globals__ }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{firstName|e}}x{{ ''.__class__ }}",
    "{{% raw %}}",
    "{{trackingPixelUrl}}",
]
# Other engines' syntax and broken braces: no placeholder at all, so sent exactly as written.
LITERAL = [
    "{% for x in range(3) %}loop{% endfor %}",
    "{% import os %}{%raw%}",
    "${7*7}",
    "#{7*7}",
    "<%= 7*7 %>",
    "*{7*7}",
    "lone }}",
    "{ {firstName} }",
    "[[${7*7}]]",
    "{{ lone",  # last: joined with what follows, it would make a placeholder
]
# Nested braces: the innermost {{...}} is the placeholder, the outer braces stay literal.
NESTED = {
    "{{{firstName}}}": "{Ann}",
    "{{ {{firstName}} }}": "{{ Ann }}",
    "{{{{email}}}}": "{{ann@example.com}}",
}


@pytest.mark.parametrize("field", ["subject", "htmlBody", "textBody"])
def test_unknown_placeholders_are_422_naming_them_and_the_field(client, admin, field):
    for payload in REFUSED:
        if field == "subject" and payload == "{{trackingPixelUrl}}":
            continue
        response = client.post(
            f"{API}/campaigns",
            json=campaign_body(**{field: f"Hi {payload}"}),
            headers=admin.headers,
        )
        error = assert_field_error(response, field, code="unknown_placeholder")
        shown = payload.split("}}")[0] if "|" not in payload else payload.split("x")[1]
        assert shown[:50] in error["message"], (payload, error["message"])
    listed = client.get(f"{API}/campaigns", headers=admin.headers).json()
    assert listed["total"] == 0


def test_literal_syntax_and_values_are_sent_as_text_never_evaluated(
    client,
    runtime,
    smtp_server,  # noqa: F811
    admin,
):
    """Over real SMTP: other engines' syntax arrives as written; a contact's value that
    looks like a placeholder is not merged again; in HTML every value is escaped."""
    hostile = {
        "firstName": "{{email}}",
        "lastName": "<script>alert(1)</script>",
        "companyName": "{{firstName}} & ${7*7} {% raw %}",
    }
    ann = {"firstName": "Ann", "lastName": "Lee", "companyName": "Acme"}
    contacts = {unique_email("hostile"): hostile, "ann@example.com": ann}
    for email, values in contacts.items():
        created = client.post(
            "/api/crm/contacts", json={"email": email, **values}, headers=admin.headers
        )
        assert created.status_code == 201, created.text
    literal = " | ".join(LITERAL)
    nested = " | ".join(NESTED)
    received = send_over_smtp(
        client,
        runtime,
        smtp_server,
        admin,
        2,
        subject="{{firstName}} {{companyName}} " + literal,
        htmlBody=f"<p>{literal}</p><p>{nested}</p><p>{{{{firstName}}}} {{{{lastName}}}} "
        "{{companyName}}</p>",
        textBody=f"{literal}\n{nested}\n{{{{firstName}}}} {{{{lastName}}}} {{{{companyName}}}}",
    )
    for message in received:
        (email,) = message.rcpt_tos
        values = contacts[email]
        parsed = parse_strictly(message.data)
        merged = f"{values['firstName']} {values['companyName']} {literal}"
        assert str(parsed["Subject"]) == merged
        text_part, html_part = (parsed.get_body((kind,)) for kind in ("plain", "html"))
        assert text_part is not None and html_part is not None
        text = text_part.get_content().replace("\r\n", "\n")
        body = html_part.get_content()
        expected_nested = " | ".join(
            shown.replace("Ann", values["firstName"]).replace("ann@example.com", email)
            for shown in NESTED.values()
        )
        assert text.startswith(
            f"{literal}\n{expected_nested}\n{values['firstName']} {values['lastName']} "
            f"{values['companyName']}\n"
        )
        # The author's HTML may be re-serialised (CSS inlining) but never evaluated.
        assert html.escape(literal, quote=False) in body or literal in body
        escaped = " ".join(html.escape(values[k]) for k in ("firstName", "lastName", "companyName"))
        assert f"<p>{escaped}</p>" in body
        assert "<script>" not in body
