"""CSV text that a spreadsheet shows as written and never runs as a formula (OWASP's CSV
injection guidance): every CSV Herald writes goes through ``csv_text``."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable

# A spreadsheet reads a cell starting with one of these as a formula.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# A formula start at the cell's start, or after a character that some reader (another
# locale's separator, a line break) may take as the start of a cell.
_FORMULA_AT_A_CELL_START = re.compile(r"(?:^|(?<=[,;\t\r\n]))(?=[=+\-@\t\r])")


def neutralise(value: str) -> str:
    """The cell as text: an apostrophe before every formula start that a reader splitting on
    ``,``, ``;``, tab or a line break would see at a cell's start."""
    return _FORMULA_AT_A_CELL_START.sub("'", value)


def csv_text(rows: Iterable[Iterable[str]]) -> str:
    """Rows of already-neutralised cells as CSV lines; every cell quoted, so a separator or
    a quote inside a cell stays inside it."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_ALL).writerows(rows)
    return buffer.getvalue()


def header_text(names: Iterable[str]) -> str:
    """The header line: Herald's own column names, plain words that need no quoting."""
    names = list(names)
    assert all(name.isalnum() for name in names), names
    return ",".join(names) + "\r\n"
