"""CSV injection: contact values a spreadsheet would run as formulas, imported from CSV, come
out of every CSV export (the API's sends.csv and the page's download) as text, with an
apostrophe in front; plain values, addresses and quoting survive a round trip."""

from __future__ import annotations

import csv
import io

import pytest

from herald.marketing.export import neutralise
from tests.marketing.engine import add_contacts
from tests.security.hostile import fresh_admin, launched_exports

admin = pytest.fixture(fresh_admin)

FORMULAS = [
    '=HYPERLINK("http://evil.example","click")',
    "+cmd|'/C calc'!A0",
    "-2+3+cmd|'/C calc'!A0",
    "@SUM(1)",
    "=1+1",
    "-5",  # a plain negative number is a formula start too: exported as '-5
]
HEADER = [
    "email", "firstName", "lastName", "status", "deliveredAt", "openedAt", "error", "bounceType",
    "bouncedAt", "complainedAt", "clickedAt", "machine",
]  # fmt: skip


def read_csv(text: str) -> list[dict[str, str]]:
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == HEADER
    return [dict(zip(HEADER, row, strict=True)) for row in rows[1:]]


def test_formulas_are_neutralised_in_every_csv_export(client, runtime, admin):
    lines = ["email,firstName,lastName,companyName"]
    expected: dict[str, tuple[str, str]] = {}
    for i, value in enumerate(FORMULAS):
        email = f"f{i}@example.com"
        quoted = '"' + value.replace('"', '""') + '"'
        lines.append(f"{email},{quoted},{quoted},{quoted}")
        expected[email] = (value, value)
    lines.append('plain@example.com,"O\'Brien, Jr.","a=b ""quoted"""')
    expected["plain@example.com"] = ("O'Brien, Jr.", 'a=b "quoted"')
    lines.append("=1+2@example.com,Formula,Address")  # a valid address that is a formula
    expected["=1+2@example.com"] = ("Formula", "Address")
    imported = client.post(
        "/api/crm/contacts/import",
        files={"file": ("c.csv", ("\r\n".join(lines) + "\r\n").encode(), "text/csv")},
        headers=admin.headers,
    )
    assert imported.status_code == 200, imported.text
    assert imported.json()["created"] == len(expected), imported.json()
    # Stored before the rules (straight in the database): a leading tab and CR.
    add_contacts(runtime, admin.org_id, ["tab@example.com"], first_name="\t=1+1", last_name="\rx")
    expected["tab@example.com"] = ("\t=1+1", "\rx")

    exports = launched_exports(client, runtime, admin, "Export")
    for where, response in exports.items():
        assert response.status_code == 200, (where, response.text)
        assert response.headers["content-type"].startswith("text/csv"), where
        rows = {r["email"]: r for r in read_csv(response.text)}
        assert set(rows) == {neutralise(e) for e in expected}, where
        assert rows["'=1+2@example.com"]["firstName"] == "Formula"
        for email, (first, last) in expected.items():
            row = rows[neutralise(email)]
            assert (row["firstName"], row["lastName"]) == (neutralise(first), neutralise(last))
            for cell in row.values():
                assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (where, cell)
        assert rows["f5@example.com"]["firstName"] == "'-5"
        assert rows["plain@example.com"]["lastName"] == 'a=b "quoted"'


def test_neutralise_leaves_ordinary_text_alone():
    for value in ("Ann", "ann@example.com", "a=b", "5", "5-3", " =x", "", "O'Brien"):
        assert neutralise(value) == value
    for value in ("=x", "+x", "-x", "@x", "\tx", "\rx", "-5"):
        assert neutralise(value) == "'" + value
