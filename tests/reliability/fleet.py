"""`herald worker` processes that a test kills with SIGKILL at random moments and restarts."""

from __future__ import annotations

import random
import signal
import subprocess
import time

from herald.runtime import Runtime
from tests.marketing.engine import start_worker_process, stop_process


class WorkerFleet:
    def __init__(self, runtime: Runtime, size: int, rng: random.Random, concurrency: int = 4):
        self.runtime, self.rng, self.concurrency = runtime, rng, concurrency
        self.workers: list[tuple[subprocess.Popen[bytes], float]] = []
        self.kills = 0
        self.restarts = 0
        for _ in range(size):
            self._start()

    def _start(self) -> None:
        process = start_worker_process(self.runtime, self.concurrency)
        self.workers.append((process, time.monotonic()))

    def kill_one(self, min_age: float = 0.5) -> bool:
        """SIGKILL one worker that has been up at least ``min_age`` seconds, start another."""
        now = time.monotonic()
        ready = [i for i, (_p, started) in enumerate(self.workers) if now - started >= min_age]
        if not ready:
            return False
        process, _ = self.workers.pop(self.rng.choice(ready))
        process.send_signal(signal.SIGKILL)
        process.wait()
        self.kills += 1
        self._start()
        self.restarts += 1
        return True

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
