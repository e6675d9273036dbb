"""The plain-text alternative of an HTML email body, for campaigns written only in HTML."""

from __future__ import annotations

import re
from html.parser import HTMLParser

_SKIP = frozenset({"script", "style", "title", "template", "noscript"})
_PARAGRAPH = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "ul", "ol", "table", "pre", "dl"}
)
_LINE = frozenset(
    {
        "div", "tr", "li", "section", "article", "header", "footer", "main", "nav", "aside",
        "address", "figure", "figcaption", "dt", "dd", "form", "fieldset", "center",
        "thead", "tbody", "tfoot", "caption",
    }
)  # fmt: skip
_CELLS = frozenset({"td", "th"})
_SPACES = re.compile(r"[ \t\n\r\f]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def html_to_text(source: str) -> str:
    """Readable text: blocks become lines, links ``text (url)``, entities decoded.

    Whitespace is collapsed as a browser would (no-break spaces are kept); script, style
    and title are dropped; images are left out.
    """
    parser = _TextExtractor()
    parser.feed(source)
    parser.close()
    return parser.text()


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._parts: list[str] = []
        self._pending = 0  # line breaks owed before the next text
        self._after_space = True  # at a line start or after a space: drop leading spaces
        self._skip = 0
        self._pre = 0
        self._links: list[tuple[str, int]] = []
        self._lists: list[int] = []  # per open list: the next number, or 0 for bullets

    def text(self) -> str:
        text = "".join(self._parts)
        lines = (line.rstrip(" \t") for line in text.split("\n"))
        return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip("\n")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skip += 1
        elif tag == "br":
            self._pending += 1
        elif tag == "hr":
            self._break(2)
            self._write("-" * 20)
            self._break(2)
        elif tag == "a":
            href = next((v for k, v in attrs if k == "href" and v), "")
            self._links.append((href.strip(), len(self._parts)))
        elif tag in ("ul", "ol"):
            self._break(2 if not self._lists else 1)
            self._lists.append(1 if tag == "ol" else 0)
        elif tag == "li":
            self._break(1)
            if self._lists and self._lists[-1]:
                self._write(f"{self._lists[-1]}. ")
                self._lists[-1] += 1
            else:
                self._write("* ")
        elif tag in _CELLS:
            if not self._after_space:
                self._write(" ")
        else:
            self._block(tag)
            if tag == "pre":
                self._pre += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag == "a" and self._links:
            self._end_link(*self._links.pop())
        elif tag in ("ul", "ol"):
            if self._lists:
                self._lists.pop()
            self._break(2 if not self._lists else 1)
        else:
            self._block(tag)
            if tag == "pre":
                self._pre = max(0, self._pre - 1)

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._pre:
            self._write(data, raw=True)
            return
        text = _SPACES.sub(" ", data)
        if self._after_space:
            text = text.lstrip(" ")
        self._write(text)

    def _block(self, tag: str) -> None:
        if tag in _PARAGRAPH:
            self._break(2)
        elif tag in _LINE:
            self._break(1)

    def _break(self, lines: int) -> None:
        if self._parts:
            self._pending = max(self._pending, lines)

    def _write(self, text: str, *, raw: bool = False) -> None:
        if not text:
            return
        if self._pending:
            if self._parts:
                self._parts[-1] = self._parts[-1].rstrip(" ")
            self._parts.append("\n" * self._pending)
            self._pending = 0
            if not raw:
                text = text.lstrip(" ")
                if not text:
                    self._after_space = True
                    return
        self._parts.append(text)
        self._after_space = text[-1] in " \n"

    def _end_link(self, href: str, start: int) -> None:
        label = " ".join("".join(self._parts[start:]).split())
        if not href or href.lower().startswith(("#", "javascript:")):
            return
        shown = href.removeprefix("mailto:")
        if label in (href, shown):
            return
        if not label:
            self._write(shown)
        else:
            self._write(f" ({shown})" if not self._after_space else f"({shown})")
