"""`herald dev` as a newcomer meets it through `make run`: it prints where to go and how to
log in, the demo campaign arrives in the Inbox, a second run reuses the data, and Ctrl-C
leaves nothing running."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

HERALD = str(Path(sys.executable).with_name("herald"))
STARTUP_SECONDS = 60


class DevRun:
    """`herald dev` in a directory of its own, its output read line by line."""

    def __init__(self, cwd: Path, port: int, smtp_port: int, inbound_port: int) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
        ports = ["--port", str(port), "--smtp-port", str(smtp_port)]
        self.process = subprocess.Popen(
            [HERALD, "dev", *ports, "--inbound-port", str(inbound_port)],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.printed = self._until_started()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            self.lines.put(line.rstrip("\n"))

    def _until_started(self) -> dict[str, str]:
        printed: dict[str, str] = {}
        deadline = time.monotonic() + STARTUP_SECONDS
        while "Inbox" not in printed or "Login" not in printed:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                self.process.kill()
                pytest.fail("herald dev did not start:\n" + "".join(self.output))
            key, _, value = line.partition(": ")
            if key in ("App", "Inbox", "Login") and value:
                printed[key] = value
            elif line.startswith("Herald is running"):
                printed["banner"] = line
        return printed

    def interrupt(self) -> int:
        """Ctrl-C, as a terminal sends it."""
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            pytest.fail("herald dev did not stop on Ctrl-C:\n" + "".join(self.output))


def children_of(pid: int) -> list[str]:
    found = subprocess.run(
        ["ps", "-o", "pid=,args=", "--ppid", str(pid)], capture_output=True, text=True
    )
    return [line for line in found.stdout.splitlines() if line.strip()]


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def wait_for(check, timeout: float = 60):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    pytest.fail("timed out")


def test_make_run_path_demo_campaign_arrives_then_second_run_reuses_the_data(tmp_path):
    port, smtp_port, inbound_port = free_port(), free_port(), free_port()
    run = DevRun(tmp_path, port, smtp_port, inbound_port)
    app_url = f"http://127.0.0.1:{port}"
    try:
        assert run.printed["App"].rstrip("/") == app_url
        assert run.printed["Inbox"] == f"{app_url}/dev/inbox"
        email, _, password = run.printed["Login"].partition(" / ")
        assert "new demo org" in run.printed["banner"]
        assert children_of(run.process.pid) == []  # web app, worker and catcher: one process

        with httpx.Client(base_url=app_url, timeout=30) as client:
            login = client.post("/api/auth/login", json={"email": email, "password": password})
            assert login.status_code == 200, login.text
            auth = {"Authorization": f"Bearer {login.json()['accessToken']}"}
            campaigns = client.get("/api/marketing/campaigns", headers=auth).json()["items"]
            welcome = next(c for c in campaigns if c["name"] == "Welcome to Herald")
            launched = client.post(f"/api/marketing/campaigns/{welcome['id']}/launch", headers=auth)
            assert launched.status_code == 202, launched.text
            recipients = launched.json()["recipients"]
            assert recipients > 100

            stats_url = f"/api/marketing/campaigns/{welcome['id']}/stats"
            wait_for(lambda: client.get(stats_url, headers=auth).json()["status"] == "SENT")
            # the demo's bouncing contacts: a hard and a soft bounce and a complaint come
            # back through Herald's own receiver a moment after their delivery
            stats = wait_for(
                lambda: (
                    (s := client.get(stats_url, headers=auth).json())["complaints"] == 1
                    and s["bounced"] == 2
                    and s
                )
            )
            assert (stats["delivered"], stats["failed"]) == (recipients - 2, 2)
            reports = client.get("/api/marketing/bounces", headers=auth).json()["items"]
            assert sorted(r["type"] for r in reports) == ["complaint", "hard", "soft"]
            assert {r["source"] for r in reports} == {"smtp"}
            mailbox = tmp_path / "data" / "mailbox"
            assert len(list(mailbox.glob("*.eml"))) == recipients

            # The Inbox page, with the same session a browser would hold
            client.cookies.set("herald_access", login.json()["accessToken"])
            inbox = client.get("/dev/inbox")
            assert inbox.status_code == 200
            assert f"{recipients} message(s)" in inbox.text
            assert "Welcome, " in inbox.text
            first_id = sorted(mailbox.glob("*.eml"))[0].stem
            headers = client.get(f"/dev/inbox/{first_id}", params={"view": "headers"})
            assert f"&lt;{app_url}/u/" in headers.text  # List-Unsubscribe points back here
    finally:
        code = run.interrupt()
    assert code in (0, 130), "".join(run.output)
    assert "Herald stopped" in "".join(run.output)
    assert port_is_free(port) and port_is_free(smtp_port) and port_is_free(inbound_port)

    again = DevRun(tmp_path, port, smtp_port, inbound_port)
    try:
        assert again.printed["Login"] == f"{email} / {password}"
        assert "new demo org" not in again.printed["banner"]
    finally:
        assert again.interrupt() in (0, 130)


def test_a_busy_port_is_refused_with_a_clear_message(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        done = subprocess.run(
            [
                HERALD,
                "dev",
                *("--port", str(free_port()), "--smtp-port", str(busy)),
                *("--inbound-port", str(free_port())),
            ],
            cwd=tmp_path,
            env={k: v for k, v in os.environ.items() if not k.startswith("HERALD_")},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2
    assert f"port {busy}" in done.stderr and "--smtp-port" in done.stderr
    assert not (tmp_path / "data").exists()  # refused before touching anything
