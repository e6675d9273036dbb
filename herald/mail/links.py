"""Tracked links: the http(s) links of a campaign's HTML, found and rewritten once per
campaign to Herald's ``/c/{token}/{n}`` redirect, and each link's target merged for one
recipient when the redirect is followed.

A rewritten ``href`` is ``{{trackedLinkBase}}/n``: composing a message then only merges one
more value (``{base_url}/c/{token}``), as it does for the pixel. ``mailto:``, ``tel:``,
anchors, relative links and the unsubscribe link stay as written.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from html.parser import HTMLParser
from urllib.parse import quote, urlsplit

from herald.mail.merge import BODY_FIELDS, Placeholder, Template

LINK_BASE_FIELD = "trackedLinkBase"  # internal: never accepted from an author
TRAP_LINK = 0  # the hidden link of every tracked message (herald.marketing.classify)
TRAP_ANCHOR = (
    '<a href="{{' + LINK_BASE_FIELD + '}}/0" style="display:none" aria-hidden="true" '
    'tabindex="-1"></a>'
)
LINK_TAGS = frozenset({"a", "area"})

_TRACKED = re.compile(r"https?://", re.IGNORECASE)
# One attribute of a start tag: its name, then (optionally) = and a value in any quoting.
_ATTRIBUTE = re.compile(r"""([^\s/>"'=]+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>]*))?""")
_TAG_NAME = re.compile(r"<[^\s/>]+")
# What a Location header may carry as it is: RFC 3986's reserved and unreserved
# characters, and "%" (the author's own escapes stay as written).
_URL_SAFE = "!#$%&'()*+,-./:;=?@[]_~"


def rewrite_links(source: str) -> tuple[str, tuple[str, ...]]:
    """``source`` with each tracked link's href replaced, and the links' URLs in order
    (HTML entities decoded, placeholders unmerged): link n is ``urls[n - 1]``."""
    finder = _LinkFinder(source)
    out: list[str] = []
    urls: list[str] = []
    position = 0
    for start, end, url in finder.links:
        urls.append(url)
        out.append(source[position:start])
        out.append(f'href="{{{{{LINK_BASE_FIELD}}}}}/{len(urls)}"')
        position = end
    out.append(source[position:])
    return "".join(out), tuple(urls)


def tracked(url: str) -> bool:
    """Whether a link's URL (entities decoded) is one Herald tracks."""
    return (
        bool(_TRACKED.match(url)) and "unsubscribeUrl" not in Template.parse(url, "htmlBody").names
    )


class _LinkFinder(HTMLParser):
    """The span of each tracked ``href`` attribute in the source, with its decoded URL.

    The standard library's parser finds the start tags (so comments, scripts and text that
    merely look like tags are skipped); each tag's own text gives where its href is.
    """

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self._source = source
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", source)]
        self.links: list[tuple[int, int, str]] = []
        self.feed(source)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in LINK_TAGS:
            return
        text = self.get_starttag_text() or ""
        line, column = self.getpos()
        start = self._line_starts[line - 1] + column
        name = _TAG_NAME.match(text)
        position = name.end() if name else 0
        for match in _ATTRIBUTE.finditer(text, position):
            if match.group(1).lower() != "href":
                continue
            raw = match.group(2) or ""
            if raw[:1] in ("'", '"'):
                raw = raw[1:-1]
            url = html.unescape(raw).strip()
            if tracked(url):
                self.links.append((start + match.start(), start + match.end(), url))
            return  # the first href is the one a browser follows


class LinkTarget:
    """One tracked link, parsed once; :meth:`for_recipient` gives where it leads."""

    __slots__ = ("_fixed", "_template", "url")

    def __init__(self, url: str) -> None:
        self.url = url
        self._template = Template.parse(url, "htmlBody", allowed=BODY_FIELDS)
        # a link without placeholders leads to one place for everyone: worked out once
        self._fixed = None if self._template.names else safe_redirect(url)

    def for_recipient(self, values: Mapping[str, str]) -> str | None:
        """The URL with each placeholder's value percent-encoded (a value stays a value: it
        cannot add a path, a query or another host), non-ASCII and spaces encoded; None
        when the result is not an absolute http(s) URL (never redirect anywhere else)."""
        if self._fixed is not None:
            return self._fixed
        parts = [
            quote(segment.merge(values), safe="") if isinstance(segment, Placeholder) else segment
            for segment in self._template.segments
        ]
        return safe_redirect("".join(parts))


def safe_redirect(url: str) -> str | None:
    """``url`` as a Location header value, if it is an absolute http(s) URL with a host."""
    encoded = quote(url.strip(), safe=_URL_SAFE)
    try:
        parts = urlsplit(encoded)
    except ValueError:  # e.g. a malformed IPv6 host
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return encoded
