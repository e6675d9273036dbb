"""A queue for SQLite's single writer that lets the next writer in soon after one commits.

SQLite lets one transaction write at a time. A writer that finds the lock taken sleeps in
SQLite's busy handler (1, 2, 5, 10 … 100 ms) and polls again, so under steady contention,
such as two `herald worker` processes committing a chunk every few milliseconds, much of
the time goes into sleeping past the moment the lock was freed. Herald's own writers queue
on an advisory lock instead: a thread lock within the process, which hands over at once,
and ``flock`` on a file beside the database across processes, polled every 0.2 to 2 ms.
SQLite's lock stays the real one; a writer outside Herald (the sqlite3 shell) still meets
the busy timeout.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
import weakref

from sqlalchemy.engine import Engine


class WriterLock:
    """Held from a writer's BEGIN IMMEDIATE to the end of that transaction (herald.db).

    Not owned by a thread: a transaction may end on another thread than the one it began
    on (FastAPI runs a dependency's setup and teardown wherever the pool has room).
    A writer that waits longer than SQLite's own busy timeout goes ahead without it and
    leaves the decision to SQLite, so a stuck holder costs what it did before."""

    def __init__(self, path: str, timeout: float) -> None:
        self._path = path
        self._timeout = timeout
        self._fd: int | None = None
        self._thread_lock = threading.Lock()

    def acquire(self) -> bool:
        """Wait for the lock; False when the wait ran past the timeout (go ahead without)."""
        deadline = time.monotonic() + self._timeout
        if not self._thread_lock.acquire(timeout=self._timeout):
            return False
        try:
            if self._flock(deadline):
                return True
        except BaseException:
            self._thread_lock.release()
            raise
        self._thread_lock.release()
        return False

    def release(self) -> None:
        """After an ``acquire`` that returned True; from any thread."""
        try:
            fcntl.flock(self._file(), fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    def _file(self) -> int:
        if self._fd is None:
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        return self._fd

    def _flock(self, deadline: float) -> bool:
        """Polls, finely: a blocking flock could not give up at the deadline."""
        pause = 0.0002
        while not self._try_flock():
            if time.monotonic() >= deadline:
                return False
            time.sleep(pause)
            pause = min(pause * 2, 0.002)
        return True

    def _try_flock(self) -> bool:
        try:
            fcntl.flock(self._file(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def reset_after_fork(self) -> None:
        # a forked child must not share the parent's open file description
        self._fd = None
        self._thread_lock = threading.Lock()


_LOCKS: weakref.WeakKeyDictionary[Engine, WriterLock] = weakref.WeakKeyDictionary()


def register(engine: Engine, database_path: str, timeout: float) -> None:
    """Queue this engine's write transactions on a lock file beside the database."""
    lock = WriterLock(database_path + "-writer.lock", timeout)
    _LOCKS[engine] = lock
    os.register_at_fork(after_in_child=lock.reset_after_fork)


def writer_lock(engine: Engine) -> WriterLock | None:
    return _LOCKS.get(engine)
