"""Free loopback ports that no other test process on this machine is handed at the same time.

The kernel's "bind to port 0" finds a port free right now, but once the probe socket closes
another process (an xdist worker, the other database's pass, another checkout's suite) may be
handed the same number before our server binds it, or a test relying on "nothing listens
there" may find someone else's server. So each port handed out is also claimed with a marker
file naming this process; a marker whose process is gone is taken over, and ours are removed
when the process ends.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import socket
import tempfile
from pathlib import Path

HOST = "127.0.0.1"
CLAIMS = Path(tempfile.gettempdir()) / f"herald-test-ports-{os.getuid()}"
_claimed: list[Path] = []


def alive(pid: int) -> bool:
    """Whether a process of this id exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _claim(port: int) -> bool:
    """Under the directory's lock: take the port unless a live process holds its marker."""
    marker = CLAIMS / str(port)
    with open(CLAIMS / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with contextlib.suppress(FileNotFoundError, ValueError):
            if alive(int(marker.read_text())):
                return False
        marker.write_text(str(os.getpid()))
    _claimed.append(marker)
    return True


def free_port() -> int:
    """A loopback TCP port nothing listens on and no other test process holds a claim to."""
    CLAIMS.mkdir(exist_ok=True)
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind((HOST, 0))
            port = int(probe.getsockname()[1])
        if _claim(port):
            return port
    raise RuntimeError("no free loopback port could be claimed")


@atexit.register
def _release() -> None:
    for marker in _claimed:
        with contextlib.suppress(OSError):
            marker.unlink()
