"""Merge placeholders: ``{{firstName}}`` and ``{{firstName|fallback}}`` in subjects and bodies.

A purpose-built substitution, not a template engine: nothing is ever evaluated. A template is
parsed once into literal and placeholder segments; rendering for a recipient is a list join.
"""

from __future__ import annotations

import html
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from herald.errors import ValidationFailed

CONTACT_FIELDS = ("firstName", "lastName", "companyName", "email")
LINK_FIELDS = ("unsubscribeUrl",)
SUBJECT_FIELDS = CONTACT_FIELDS
BODY_FIELDS = CONTACT_FIELDS + LINK_FIELDS

# Anything between {{ and }} without braces inside is a placeholder; every other text is literal.
_TOKEN = re.compile(r"\{\{([^{}]*)\}\}")
# C0 controls except tab, and DEL: never allowed into a header line.
_HEADER_UNSAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_SHOWN_MAX = 60


def strip_controls(value: str) -> str:
    """``value`` without CR, LF and the other C0 controls (tab kept) and DEL."""
    return _HEADER_UNSAFE.sub("", value)


@dataclass(frozen=True, slots=True, eq=False)
class Placeholder:
    """One ``{{name|fallback}}``; a template holds one object per distinct name and fallback,
    so a renderer may cache per object."""

    name: str
    fallback: str
    fallback_html: str  # the fallback as HTML text: unescaped once, then escaped

    def merge(self, values: Mapping[str, str], *, escape_html: bool = False) -> str:
        value = values.get(self.name) or ""
        if escape_html:
            return html.escape(value, quote=True) if value else self.fallback_html
        return value or self.fallback


class Template:
    """A parsed template. Build it with :meth:`parse`."""

    __slots__ = ("_parts", "_slots", "field", "segments", "source")

    def __init__(self, source: str, field: str, segments: tuple[str | Placeholder, ...]):
        self.source = source
        self.field = field
        self.segments = segments  # non-empty literals and placeholders, in order
        self._parts = ["" if isinstance(s, Placeholder) else s for s in segments]
        self._slots = tuple((i, s) for i, s in enumerate(segments) if isinstance(s, Placeholder))

    @classmethod
    def parse(cls, text: str, field: str, *, allowed: Collection[str] = BODY_FIELDS) -> Template:
        """Split ``text`` into literals and placeholders.

        Raises ValidationFailed (code ``unknown_placeholder``, naming the placeholder and
        ``field``) for a ``{{...}}`` whose name is not in ``allowed``: use SUBJECT_FIELDS for
        a subject, BODY_FIELDS (the default) for a body.
        """
        segments: list[str | Placeholder] = []
        seen: dict[tuple[str, str], Placeholder] = {}
        position = 0
        for match in _TOKEN.finditer(text):
            name, bar, fallback = match.group(1).partition("|")
            name = name.strip()
            if name not in allowed:
                raise _unknown(match.group(0), name, field, allowed)
            if match.start() > position:
                segments.append(text[position : match.start()])
            fallback = fallback.strip() if bar else ""
            placeholder = seen.get((name, fallback))
            if placeholder is None:
                # In HTML the author may have typed the fallback already escaped (an editor
                # does): so "Tom &amp; Jerry" and "Tom & Jerry" both show as typed.
                fallback_html = html.escape(html.unescape(fallback), quote=True)
                placeholder = seen[name, fallback] = Placeholder(name, fallback, fallback_html)
            segments.append(placeholder)
            position = match.end()
        if position < len(text):
            segments.append(text[position:])
        return cls(text, field, tuple(segments))

    def uses(self, name: str) -> bool:
        return any(p.name == name for _, p in self._slots)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(p.name for _, p in self._slots)

    def render(
        self, values: Mapping[str, str], *, escape_html: bool = False, header: bool = False
    ) -> str:
        """The text with each placeholder replaced by its value, or its fallback when empty.

        ``escape_html`` escapes values and fallbacks (literals are the author's HTML and stay
        as written; a fallback is first unescaped, so it never ends up double-escaped).
        ``header`` removes CR, LF and other control characters from the whole result.
        """
        parts = self._parts.copy()
        for index, placeholder in self._slots:
            parts[index] = placeholder.merge(values, escape_html=escape_html)
        out = "".join(parts)
        return _HEADER_UNSAFE.sub("", out) if header else out


def validate(text: str, field: str, *, allow_links: bool = True) -> None:
    """The save-time check: raises ValidationFailed for an unknown placeholder in ``text``.

    ``allow_links=False`` for the subject: ``{{unsubscribeUrl}}`` belongs in a body.
    """
    Template.parse(text, field, allowed=BODY_FIELDS if allow_links else SUBJECT_FIELDS)


def _unknown(token: str, name: str, field: str, allowed: Collection[str]) -> ValidationFailed:
    shown = token if len(token) <= _SHOWN_MAX else token[: _SHOWN_MAX - 3] + "...}}"
    known = ", ".join("{{" + n + "}}" for n in allowed)
    if name in BODY_FIELDS:
        message = f"Placeholder {shown} is only allowed in the email body, not in {field}."
    else:
        message = f"Unknown placeholder {shown} in {field}; use one of {known}."
    return ValidationFailed(message, field=field, code="unknown_placeholder")
