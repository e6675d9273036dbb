"""SQLite's write-ahead log is checkpointed by Herald's own thread, not by a writer's commit
(herald/checkpoint.py). Runs on a SQLite file of its own whatever the test database."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from herald import checkpoint
from herald.db import make_engine, make_session_factory, unit_of_work

ROWS, ROW_BYTES = 200, 8000  # about 400 pages of 4 KiB: within SQLite's own 1,000-page mark
INSERT = text("INSERT INTO blobs VALUES (randomblob(:n))")


def database_file_holds(path: Path, n_bytes: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.stat().st_size >= n_bytes:
            return True
        time.sleep(0.05)
    return False


def test_commits_are_checkpointed_into_the_database_file_by_a_thread(tmp_path):
    path = tmp_path / "herald.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE blobs (data BLOB)")
        empty = path.stat().st_size
        sessions = make_session_factory(engine)
        for _ in range(ROWS // 2):  # commits both ways: ORM sessions and Core connections
            with unit_of_work(sessions) as session:
                session.execute(INSERT, {"n": ROW_BYTES})
            with engine.begin() as connection:
                connection.execute(INSERT, {"n": ROW_BYTES})
        with engine.connect() as connection:  # no connection checkpoints by itself
            assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
        # the rows reach the database file itself, though no commit crossed 1,000 pages and
        # no connection checkpoints by itself
        assert database_file_holds(path, empty + ROWS * ROW_BYTES)
        found = checkpoint.checkpointer(engine)
        assert found is not None
        # the thread counts a checkpoint once it returns, a moment after the file has grown
        deadline = time.monotonic() + 5
        while found.checkpoints < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert found.checkpoints >= 1
    finally:
        engine.dispose()


def test_a_checkpoint_that_fails_is_logged_and_a_later_commit_checkpoints(
    tmp_path, monkeypatch, capfd
):
    path = tmp_path / "herald.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE blobs (data BLOB)")
        found = checkpoint.checkpointer(engine)
        assert found is not None
        deadline = time.monotonic() + 5
        while found.checkpoints < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        done = found.checkpoints
        connect = engine.connect

        def unavailable_to_the_checkpointer() -> object:
            if threading.current_thread().name == "herald-sqlite-checkpoint":
                raise OperationalError("PRAGMA wal_checkpoint", {}, Exception("disk I/O error"))
            return connect()

        monkeypatch.setattr(engine, "connect", unavailable_to_the_checkpointer)
        with engine.begin() as connection:
            connection.execute(INSERT, {"n": 100})
        deadline = time.monotonic() + 5
        logged = ""
        while "sqlite.checkpoint_failed" not in logged:
            logged += "".join(capfd.readouterr())
            assert time.monotonic() < deadline, "the failure was not logged"
            time.sleep(0.05)
        assert found.checkpoints == done
        monkeypatch.setattr(engine, "connect", connect)
        with engine.begin() as connection:
            connection.execute(INSERT, {"n": 100})
        deadline = time.monotonic() + 5
        while found.checkpoints == done:
            assert time.monotonic() < deadline, "no checkpoint after the failure"
            time.sleep(0.05)
    finally:
        engine.dispose()
