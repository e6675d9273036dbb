"""`herald worker` processes that a test kills with SIGKILL at random moments and restarts."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

from sqlalchemy.engine import make_url

from herald.runtime import Runtime
from tests.marketing.engine import start_worker_process, stop_process, wait_until


class WorkerFleet:
    def __init__(
        self, runtime: Runtime, size: int, rng: random.Random | None = None, concurrency: int = 4
    ):
        self.runtime, self.concurrency = runtime, concurrency
        self.rng = rng or random.Random()
        self.workers: list[tuple[subprocess.Popen[bytes], float]] = []
        self.kills = 0
        self.restarts = 0
        for _ in range(size):
            self._start()

    def _start(self) -> None:
        process = start_worker_process(self.runtime, self.concurrency)
        self.workers.append((process, time.monotonic()))

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        """SIGKILL this worker, start another."""
        self.workers = [(p, started) for p, started in self.workers if p is not process]
        process.send_signal(signal.SIGKILL)
        process.wait()
        self.kills += 1
        self._start()
        self.restarts += 1

    def kill_one(self, min_age: float = 0.5) -> bool:
        """SIGKILL one worker that has been up at least ``min_age`` seconds, start another."""
        now = time.monotonic()
        ready = [i for i, (_p, started) in enumerate(self.workers) if now - started >= min_age]
        if not ready:
            return False
        process, _ = self.workers[self.rng.choice(ready)]
        self.kill(process)
        return True

    def wait_ready(self, timeout: float = 60) -> None:
        """Until every worker has reached its loop: it holds a connection to the database
        (its first act after starting, which takes seconds on a busy machine)."""
        wait_until(
            lambda: all(_uses_database(self.runtime, p.pid) for p, _ in self.workers), timeout
        )

    def crashed(self) -> list[str]:
        """Workers that ended by themselves (they should not), with what they printed."""
        ended = []
        for process, _ in self.workers:
            if process.poll() is not None:
                assert process.stderr is not None
                ended.append(f"exit {process.returncode}: {process.stderr.read().decode()[-2000:]}")
        return ended

    def stop(self) -> None:
        for process, _ in self.workers:
            stop_process(process)


def _uses_database(runtime: Runtime, pid: int) -> bool:
    """Whether the process has the SQLite file open, or a TCP connection to PostgreSQL."""
    url = make_url(runtime.settings.database_url)
    if url.get_backend_name() == "sqlite":
        return str(Path(url.database or "").resolve()) in _open_files(pid)
    return (url.port or 5432) in tcp_peer_ports(pid)


def _open_files(pid: int) -> list[str]:
    try:
        return [os.readlink(f) for f in Path(f"/proc/{pid}/fd").iterdir()]
    except OSError:  # gone, or a descriptor closed while we looked
        return []


def tcp_peer_ports(pid: int) -> set[int]:
    """The remote ports of the process's TCP connections (Linux /proc)."""
    sockets = {link[8:-1] for link in _open_files(pid) if link.startswith("socket:[")}
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in sockets:
                ports.add(int(fields[2].rsplit(":", 1)[1], 16))
    return ports
