"""CSV cells in semicolon (and tab) separator locales: a formula after a separator inside a
cell is neutralised too, and every cell is quoted, in the API's and the page's exports."""

from __future__ import annotations

import csv
import io

import pytest

from tests.marketing.engine import add_contacts
from tests.security.hostile import fresh_admin, launched_exports

admin = pytest.fixture(fresh_admin)

HOSTILE = {
    "semi@example.com": ("a", "x;=1+1;y"),
    "comma@example.com": ("b,@SUM(1)", "plain"),
    "tab@example.com": ("c\t+cmd", "d\n-2+3"),
}
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def naive_cells(text: str) -> list[str]:
    """The cells a reader that ignores quotes and splits on any separator would see."""
    cells: list[str] = []
    for line in text.replace("\r", "\n").split("\n"):
        for separator in (",", ";", "\t"):
            line = line.replace(separator, "\x00")
        cells += [cell.lstrip('"') for cell in line.split("\x00")]
    return cells


def test_no_cell_starts_a_formula_whatever_the_separator(client, runtime, admin):
    for email, (first, last) in HOSTILE.items():
        add_contacts(runtime, admin.org_id, [email], first_name=first, last_name=last)
    exports = launched_exports(client, runtime, admin, "Cells")
    for where, response in exports.items():
        assert response.status_code == 200, (where, response.text)
        text = response.text
        for cell in naive_cells(text):
            assert not cell.startswith(FORMULA_START), (where, cell)
        # Every cell quoted: the semicolon cell is one cell, in any locale that honours quotes.
        assert '"x;\'=1+1;y"' in text, where
        rows = {r[0]: r for r in csv.reader(io.StringIO(text, newline=""))}
        assert rows["semi@example.com"][1:3] == ["a", "x;'=1+1;y"], where
        assert rows["comma@example.com"][1:3] == ["b,'@SUM(1)", "plain"], where
        assert rows["tab@example.com"][1:3] == ["c\t'+cmd", "d\n'-2+3"], where
