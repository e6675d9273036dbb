"""SQLite's write-ahead log copied back into the database file by a thread of Herald's own,
not by the commit of whichever writer crosses SQLite's automatic checkpoint (1,000 pages).

A checkpoint syncs the database file: milliseconds, and on a busy disk up to a hundred, which
that writer's commit waited for, and with it every request waiting for that commit (the
one-click POSTs of a batch). Here every connection of the engine leaves checkpoints alone,
and a thread runs a passive one shortly after commits: it copies what no reader still needs
and never blocks a reader or a writer. Durability is unchanged: a commit is in the log
before it returns, whoever checkpoints later.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from herald.log import get_logger

log = get_logger(__name__)

# After the first commit since the last checkpoint, how long to let more gather: a flood of
# small commits then costs ten checkpoints a second, not one per commit.
DELAY = 0.1
# How often an idle thread looks whether its engine is still in use.
IDLE_CHECK = 10.0


class Checkpointer:
    """One per SQLite engine: a daemon thread, started by the first commit, that checkpoints
    after commits and ends once the engine is gone."""

    def __init__(self, engine: Engine) -> None:
        self._engine = weakref.ref(engine)
        self._committed = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.checkpoints = 0  # completed, for tests and debugging

    def committed(self, _connection: Any) -> None:
        self._committed.set()
        if self._thread is None:
            self._start()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="herald-sqlite-checkpoint", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            if not self._committed.wait(IDLE_CHECK):
                if self._engine() is None:
                    return
                continue
            time.sleep(DELAY)
            self._committed.clear()
            engine = self._engine()
            if engine is None:
                return
            self.checkpoint(engine)
            del engine

    def checkpoint(self, engine: Engine) -> None:
        """A passive checkpoint on one of the engine's connections; a failure is logged and
        the next commit tries again (the log only grows meanwhile)."""
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        except SQLAlchemyError as exc:
            log.warning("sqlite.checkpoint_failed", error=type(exc).__name__)
            return
        self.checkpoints += 1

    def reset_after_fork(self) -> None:
        # threads do not survive a fork: the child starts its own on its first commit
        self._thread = None
        self._start_lock = threading.Lock()


_CHECKPOINTERS: weakref.WeakKeyDictionary[Engine, Checkpointer] = weakref.WeakKeyDictionary()


def _no_automatic_checkpoint(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


def register(engine: Engine) -> None:
    """Checkpoint this (file-backed, WAL) SQLite engine's log on a thread of its own."""
    checkpointer = Checkpointer(engine)
    _CHECKPOINTERS[engine] = checkpointer
    event.listen(engine, "connect", _no_automatic_checkpoint)
    event.listen(engine, "commit", checkpointer.committed)


def checkpointer(engine: Engine) -> Checkpointer | None:
    return _CHECKPOINTERS.get(engine)


def _reset_after_fork() -> None:
    for each in list(_CHECKPOINTERS.values()):
        each.reset_after_fork()


os.register_at_fork(after_in_child=_reset_after_fork)
