"""Merge placeholders: substitution, fallbacks, errors, escaping; nothing is ever evaluated."""

from __future__ import annotations

import html
import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from herald.errors import ValidationFailed
from herald.mail.merge import SUBJECT_FIELDS, Template, strip_controls, validate

ANN = {
    "firstName": "Ann",
    "lastName": "Lee",
    "companyName": "Acme",
    "email": "ann@example.com",
    "unsubscribeUrl": "https://h.example/u/abc",
}
TOKEN = re.compile(r"\{\{[^{}]*\}\}")
no_surrogates = st.characters(blacklist_categories=("Cs",))


def render(text: str, values: dict[str, str] = ANN, **kwargs: bool) -> str:
    return Template.parse(text, "htmlBody").render(values, **kwargs)


def test_each_field_is_replaced() -> None:
    text = "{{firstName}} {{lastName}} of {{companyName}} <{{email}}> {{unsubscribeUrl}}"
    assert render(text) == "Ann Lee of Acme <ann@example.com> https://h.example/u/abc"


def test_a_placeholder_may_repeat_and_sit_anywhere() -> None:
    assert render("{{firstName}}{{firstName}}x{{email}}") == "AnnAnnxann@example.com"


@pytest.mark.parametrize(
    "text",
    ["{{ firstName }}", "{{firstName }}", "{{  firstName}}", "{{\tfirstName\n}}"],
)
def test_spaces_inside_the_braces_are_allowed(text: str) -> None:
    assert render(text) == "Ann"


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ("Hi {{firstName|there}}!", {"firstName": ""}, "Hi there!"),
        ("Hi {{firstName|there}}!", {}, "Hi there!"),
        ("Hi {{ firstName | there }}!", {"firstName": ""}, "Hi there!"),
        ("Hi {{firstName|there}}!", {"firstName": "Bo"}, "Hi Bo!"),
        ("Hi {{firstName|my dear friend}}", {}, "Hi my dear friend"),
        ("Hi {{firstName|a|b}}", {}, "Hi a|b"),
        ("Hi {{firstName|}}.", {}, "Hi ."),
        ("Hi {{firstName}}.", {}, "Hi ."),
    ],
)
def test_the_fallback_stands_in_for_an_empty_or_missing_value(
    text: str, values: dict[str, str], expected: str
) -> None:
    assert render(text, values) == expected


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("Hello {{foo}}", "{{foo}}"),
        ("{{ first_name }}", "{{ first_name }}"),
        ("{{FirstName}}", "{{FirstName}}"),
        ("{{7*7}}", "{{7*7}}"),
        ("{{ config.items() }}", "{{ config.items() }}"),
        ("{{firstName.__class__}}", "{{firstName.__class__}}"),
        ("{{}}", "{{}}"),
        ("{{|fallback}}", "{{|fallback}}"),
    ],
)
def test_an_unknown_placeholder_is_rejected_naming_it_and_the_field(text: str, shown: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        Template.parse(text, "htmlBody")
    error = caught.value
    assert error.status == 422
    assert error.code == "unknown_placeholder"
    assert shown in error.message
    assert "htmlBody" in error.message
    assert "{{firstName}}" in error.message  # says what would work
    assert error.details == [{"field": "htmlBody", "message": error.message}]


def test_a_very_long_unknown_placeholder_is_shortened_in_the_message() -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate("{{" + "x" * 5000 + "}}", "textBody")
    assert len(caught.value.message) < 300
    assert "{{xxxx" in caught.value.message


def test_the_unsubscribe_link_belongs_in_bodies_not_the_subject() -> None:
    validate("Click {{unsubscribeUrl}}", "textBody")
    with pytest.raises(ValidationFailed) as caught:
        validate("Bye {{unsubscribeUrl}}", "subject", allow_links=False)
    assert caught.value.code == "unknown_placeholder"
    assert "{{unsubscribeUrl}}" in caught.value.message
    assert caught.value.details == [{"field": "subject", "message": caught.value.message}]
    assert Template.parse("Hi {{firstName}}", "subject", allowed=SUBJECT_FIELDS).uses("firstName")


@pytest.mark.parametrize(
    "text",
    [
        "{% if user %}secret{% endif %}",
        "${firstName} and ${7*7}",
        "<%= firstName %>",
        "#{firstName}",
        "lone {{ opening",
        "lone }} closing",
        "{ {firstName} }",
        "{firstName}",
        "a {{ b { c }} d",
        "css: a{b:c} {{",
        "",
    ],
)
def test_other_template_syntax_stays_literal(text: str) -> None:
    template = Template.parse(text, "textBody")
    assert template.render(ANN) == text
    assert template.names == frozenset()


def test_triple_braces_keep_the_outer_braces_literal() -> None:
    assert render("{{{firstName}}}") == "{Ann}"


def test_values_are_never_merged_again_or_evaluated() -> None:
    values = {"firstName": "{{email}}", "lastName": "{% raw %}", "email": "x@y"}
    assert render("{{firstName}} {{lastName}}", values) == "{{email}} {% raw %}"


def test_html_escaping_applies_to_values_only() -> None:
    values = {"firstName": '<script>alert("x")</script>', "companyName": "Tom & Jerry's"}
    text = '<p class="a">Hi {{firstName}} of {{companyName}} &amp; co</p>'
    assert render(text, values, escape_html=True) == (
        '<p class="a">Hi &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; '
        "of Tom &amp; Jerry&#x27;s &amp; co</p>"
    )
    assert render(text, values) == (
        '<p class="a">Hi <script>alert("x")</script> of Tom & Jerry\'s &amp; co</p>'
    )


def test_fallbacks_are_escaped_once_in_html() -> None:
    text = "{{firstName|Tom & Jerry}}/{{lastName|Tom &amp; Jerry}}/{{email|<b>}}"
    assert render(text, {}, escape_html=True) == "Tom &amp; Jerry/Tom &amp; Jerry/&lt;b&gt;"
    assert render(text, {}) == "Tom & Jerry/Tom &amp; Jerry/<b>"


def test_header_rendering_removes_line_breaks_and_controls() -> None:
    template = Template.parse("Hi {{firstName}}\r\nX-Literal: 1", "subject")
    values = {"firstName": "Bob\r\nBcc: victim@example.com\x00\x1b\x7f\tTab"}
    rendered = template.render(values, header=True)
    assert rendered == "Hi BobBcc: victim@example.com\tTabX-Literal: 1"
    assert strip_controls("a\nb\rc\x0bd\te") == "abcd\te"


def test_uses_and_names() -> None:
    template = Template.parse("{{ firstName|x }} {{unsubscribeUrl}}", "htmlBody")
    assert template.uses("firstName")
    assert template.uses("unsubscribeUrl")
    assert not template.uses("lastName")
    assert template.names == {"firstName", "unsubscribeUrl"}
    assert template.source == "{{ firstName|x }} {{unsubscribeUrl}}"


@given(st.text(no_surrogates))
def test_text_without_placeholders_renders_unchanged(text: str) -> None:
    assume(not TOKEN.search(text))
    assert Template.parse(text, "textBody").render(ANN) == text
    assert Template.parse(text, "textBody").render(ANN, escape_html=True) == text


@given(
    st.lists(
        st.one_of(
            st.text(no_surrogates.filter(lambda c: c not in "{}&<>\"'"), max_size=20),
            st.sampled_from(["{{firstName}}", "{{ lastName | friend }}", "{{email|a & b}}"]),
        ),
        max_size=8,
    ),
    st.dictionaries(
        st.sampled_from(["firstName", "lastName", "companyName", "email"]),
        st.text(no_surrogates, max_size=20),
    ),
)
def test_escaping_only_ever_changes_the_merged_values(pieces: list[str], values: dict[str, str]):
    template = Template.parse("".join(pieces), "htmlBody")
    escaped = template.render(values, escape_html=True)
    assert html.unescape(escaped) == template.render(values)
    assert not set("<>\"'") & set(escaped)
