"""One CSV import no longer holds the database's only writer for the whole file: each chunk
of rows is committed, and between chunks the writer lock is free for other orgs' writes
(logins, one-click unsubscribes). A bad file still changes nothing. The figures under load
come from bench/import_contention.py (docs/performance.md)."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import func, select

from herald import writelock
from herald.crm.importer import CHUNK_SIZE, import_contacts
from herald.crm.models import Contact
from herald.db import unit_of_work
from herald.errors import ValidationFailed
from tests.orgs.factories import make_org


def count(runtime, org_id) -> int:
    with unit_of_work(runtime.sessions, write=False) as session:
        return int(session.scalar(select(func.count()).where(Contact.org_id == org_id)) or 0)


def rows(n: int) -> bytes:
    return ("email,firstName\n" + "".join(f"r{i}@example.com,R\n" for i in range(n))).encode()


def test_chunks_are_committed_and_the_writer_is_free_between_them(runtime):
    org = make_org(runtime)
    seen: list[tuple[int, bool]] = []
    lock = writelock.writer_lock(runtime.engine)

    def between_chunks(_position: int) -> None:
        free = True
        if lock is not None:  # SQLite: another writer could take the lock now
            free = lock.try_acquire()
            if free:
                lock.release()
        seen.append((count(runtime, org.id), free))

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
