"""One CSV import no longer holds the database's only writer for the whole file: each chunk
of rows is committed, and between chunks the writer lock is free for other orgs' writes
(logins, one-click unsubscribes). A bad file still changes nothing. The figures under load
come from bench/import_contention.py (docs/performance.md)."""

from __future__ import annotations

import io
import sqlite3

import pytest
from sqlalchemy import func, select

from herald.crm.importer import CHUNK_SIZE, import_contacts
from herald.crm.models import Contact
from herald.db import SQLITE_BUSY_TIMEOUT_MS, unit_of_work
from herald.errors import ValidationFailed
from tests.orgs.factories import make_org


def count(runtime, org_id) -> int:
    with unit_of_work(runtime.sessions, write=False) as session:
        return int(session.scalar(select(func.count()).where(Contact.org_id == org_id)) or 0)


def writer_is_free(runtime) -> bool:
    """SQLite: another connection takes the write lock at once (no waiting). PostgreSQL has
    no single writer: the rows' visibility above is what shows the commit there."""
    if runtime.engine.dialect.name != "sqlite":
        return True
    with runtime.engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        assert raw is not None
        raw.execute("PRAGMA busy_timeout=0")
        try:
            raw.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:  # "database is locked": someone holds the writer
            return False
        raw.execute("ROLLBACK")
        raw.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        return True


def rows(n: int) -> bytes:
    return ("email,firstName\n" + "".join(f"r{i}@example.com,R\n" for i in range(n))).encode()


def test_chunks_are_committed_and_the_writer_is_free_between_them(runtime):
    org = make_org(runtime)
    seen: list[tuple[int, bool]] = []

    def between_chunks(_position: int) -> None:
        seen.append((count(runtime, org.id), writer_is_free(runtime)))

    with unit_of_work(runtime.sessions) as session:
        result = import_contacts(
            io.BytesIO(rows(3 * CHUNK_SIZE + 5)),
            session,
            org.id,
            progress=between_chunks,
            commit=session.commit,
        )
    assert result.created == 3 * CHUNK_SIZE + 5
    # after each chunk, another connection already sees its rows, and nobody holds the writer
    assert seen[:3] == [(CHUNK_SIZE, True), (2 * CHUNK_SIZE, True), (3 * CHUNK_SIZE, True)]


def test_a_bad_file_still_changes_nothing(runtime):
    org = make_org(runtime)
    content = rows(3 * CHUNK_SIZE) + b"late@example.com,\xff\n"
    with pytest.raises(ValidationFailed), unit_of_work(runtime.sessions) as session:
        import_contacts(io.BytesIO(content), session, org.id, commit=session.commit)
    assert count(runtime, org.id) == 0
