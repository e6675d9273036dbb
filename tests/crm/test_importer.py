"""The streaming importer called directly (as the CLI does), and `herald contacts import`."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from herald.crm.importer import CHUNK_SIZE, MAX_REPORTED_ERRORS, import_contacts
from herald.crm.models import Contact
from herald.db import unit_of_work
from herald.errors import ValidationFailed
from tests.crm.factories import make_contact
from tests.orgs.factories import make_org

pytestmark = pytest.mark.slow  # a long file: the parallel run starts it first (conftest)

HEADER = "email,firstName,lastName,companyName,status,marketingOptOut\n"


class GeneratedCsv(io.RawIOBase):
    """A CSV file produced on the fly, so that the test itself never holds it in memory."""

    def __init__(self, rows: int, bad_every: int = 0) -> None:
        self._lines = self._generate(rows, bad_every)
        self._pending = b""
        self.size = 0

    @staticmethod
    def _generate(rows: int, bad_every: int) -> Iterator[bytes]:
        yield HEADER.encode()
        statuses = ("LEAD", "PROSPECT", "CUSTOMER", "INACTIVE")
        for i in range(rows):
            if bad_every and i % bad_every == 0:
                yield f"broken-{i},Bad,Row,,,\n".encode()
            else:
                status = statuses[i % 4]
                yield f"user{i}@example.com,Fi{i},La{i},Co {i % 97},{status},no\n".encode()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        while len(self._pending) < len(buffer):
            line = next(self._lines, None)
            if line is None:
                break
            self._pending += line
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        self.size += count
        return count


def count_contacts(runtime, org_id) -> int:
    with unit_of_work(runtime.sessions) as session:
        return session.scalar(
            select(func.count()).select_from(Contact).where(Contact.org_id == org_id)
        )


def run_import(runtime, org_id, source, progress=None):
    with unit_of_work(runtime.sessions) as session:
        return import_contacts(source, session, org_id, progress)


def test_streams_50000_rows_in_chunks(runtime):
    org = make_org(runtime)
    rows, bad_every = 50_000, 1000
    source = GeneratedCsv(rows, bad_every)
    positions: list[int] = []
    result = run_import(runtime, org.id, io.BufferedReader(source), positions.append)

    bad = rows // bad_every
    assert (result.created, result.updated, result.skipped) == (rows - bad, 0, bad)
    assert [e.line for e in result.errors[:3]] == [2, 1002, 2002]
    assert count_contacts(runtime, org.id) == rows - bad
    # Progress came chunk by chunk, in bytes, up to the whole file.
    assert len(positions) >= (rows - bad) // CHUNK_SIZE
    assert positions == sorted(positions)
    assert positions[-1] == source.size

    # The start of the same file again: every valid row now updates its contact.
    again = run_import(runtime, org.id, io.BufferedReader(GeneratedCsv(5000, bad_every)))
    assert (again.created, again.updated, again.skipped) == (0, 4995, 5)
    assert count_contacts(runtime, org.id) == rows - bad


def peak_rss_of_import(database_url: str, rows: int) -> int:
    """Peak resident memory (VmHWM, bytes, reset after start-up) of a fresh process that
    imports ``rows`` rows: a process of its own, so nothing else the tests do is counted."""
    code = (
        "import io, sys\n"
        "from herald.runtime import Runtime\n"
        "from tests.conftest import make_settings\n"
        "from tests.crm.test_importer import GeneratedCsv, run_import\n"
        "from tests.orgs.factories import make_org\n"
        "runtime = Runtime.from_settings(make_settings(sys.argv[1]))\n"
        "rows = int(sys.argv[2])\n"
        "source = io.BufferedReader(GeneratedCsv(rows))\n"
        "open('/proc/self/clear_refs', 'w').write('5')  # the peak from here on\n"
        "result = run_import(runtime, make_org(runtime).id, source)\n"
        "assert result.created == rows, result\n"
        "status = open('/proc/self/status').read().split('VmHWM:')[1].split()[0]\n"
        "print(int(status) * 1024)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, database_url, str(rows)],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return int(done.stdout.strip().splitlines()[-1])


def test_memory_does_not_grow_with_the_file(runtime, database_url):
    """90,000 more rows held as bare dicts would take 57 MB (and far more as ORM objects or
    parameter lists); streamed, the peak resident memory stays within allocator noise."""
    small = peak_rss_of_import(database_url, 10 * CHUNK_SIZE)
    large = peak_rss_of_import(database_url, 100 * CHUNK_SIZE)
    assert large < small + 25_000_000, f"peak {small / 1e6:.1f} MB, then {large / 1e6:.1f} MB"


def test_duplicates_across_chunks_update_the_first(runtime):
    org = make_org(runtime)
    filler = "".join(f"f{i}@example.com\n" for i in range(CHUNK_SIZE + 10))
    text = f"email,firstName\ndup@example.com,First\n{filler}DUP@example.com,Second\n"
    result = run_import(runtime, org.id, io.BytesIO(text.encode()))
    assert (result.created, result.updated) == (CHUNK_SIZE + 11, 1)
    with unit_of_work(runtime.sessions) as session:
        contact = session.scalars(
            select(Contact).where(Contact.org_id == org.id, Contact.email_key == "dup@example.com")
        ).one()
        assert (contact.email, contact.first_name) == ("dup@example.com", "Second")


def test_reads_text_files_too(runtime, tmp_path):
    org = make_org(runtime)
    path = tmp_path / "contacts.csv"
    path.write_text("Email,First_Name\nt@example.com,Tex\n", encoding="utf-8")
    with path.open(newline="", encoding="utf-8") as source:
        result = run_import(runtime, org.id, source)
    assert result.created == 1


def test_error_list_is_capped_but_every_skip_is_counted(runtime):
    org = make_org(runtime)
    bad_rows = MAX_REPORTED_ERRORS + 250
    text = "email\n" + "not-an-email\n" * bad_rows
    result = run_import(runtime, org.id, io.BytesIO(text.encode()))
    assert result.skipped == bad_rows
    assert len(result.errors) == MAX_REPORTED_ERRORS


def test_a_late_file_error_rolls_everything_back(runtime):
    org = make_org(runtime)
    make_contact(runtime, org.id, "kept@example.com", first_name="Kept")
    rows = "".join(f"r{i}@example.com\n" for i in range(3 * CHUNK_SIZE))
    content = f"email,firstName\nkept@example.com,Changed\n{rows}".encode() + b"\xc3\x28\n"
    with pytest.raises(ValidationFailed) as caught:
        run_import(runtime, org.id, io.BytesIO(content))
    assert f"line {3 * CHUNK_SIZE + 3}" in caught.value.message
    assert count_contacts(runtime, org.id) == 1
    with unit_of_work(runtime.sessions) as session:
        kept = session.scalars(select(Contact).where(Contact.org_id == org.id)).one()
        assert kept.first_name == "Kept"


def herald_command() -> str:
    return str(Path(sys.executable).parent / "herald")


def run_cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HERALD_DATABASE_URL": database_url, "HERALD_LOG_LEVEL": "WARNING"}
    return subprocess.run(
        [herald_command(), "contacts", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_import_and_list(runtime, database_url, tmp_path):
    org = make_org(runtime)
    path = tmp_path / "contacts.csv"
    path.write_text(
        HEADER
        + "cli1@example.com,Cli,One,,CUSTOMER,\n"
        + "bad-address,Cli,Two,,,\n"
        + "cli1@example.com,Updated,,,,\n"
        + ",No,Email,,,\n"
    )
    done = run_cli(database_url, "import", str(path), "--org", str(org.id), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["created"] == 2
    assert summary["updated"] == 1
    assert summary["skipped"] == 1
    assert [e["line"] for e in summary["errors"]] == [3]
    assert count_contacts(runtime, org.id) == 2

    listed = run_cli(database_url, "list", "--org", str(org.id), "--json")
    assert listed.returncode == 0, listed.stderr
    body = json.loads(listed.stdout)
    assert body["total"] == 2
    assert {c["firstName"] for c in body["items"]} == {"Updated", "No"}


def test_cli_reports_a_bad_file(runtime, database_url, tmp_path):
    org = make_org(runtime)
    path = tmp_path / "bad.csv"
    path.write_text("email,shoeSize\na@example.com,44\n")
    done = run_cli(database_url, "import", str(path), "--org", str(org.id))
    assert done.returncode == 1
    assert "Unknown column(s) in the header (line 1): 'shoeSize'" in done.stderr
    assert count_contacts(runtime, org.id) == 0
