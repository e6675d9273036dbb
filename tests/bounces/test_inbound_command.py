"""`herald inbound` as an operator runs it: its own process, stored before 250, stopped by
SIGTERM; it refuses to start without a real secret key."""

from __future__ import annotations

import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.bounces.factories import bounce_org, contact, delivered_campaign, dsn_for, tagged
from tests.conftest import LOOPBACK_NETWORKS, TEST_SECRET, free_port
from tests.marketing.factories import get_send

HERALD = str(Path(sys.executable).with_name("herald"))


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_the_command_stores_a_bounce_and_stops_on_sigterm(runtime, database_url, tmp_path):
    org = bounce_org(runtime)
    person = contact(runtime, org)
    _, (send_id,) = delivered_campaign(runtime, org, [person])
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    env.update(
        HERALD_DATABASE_URL=database_url,
        HERALD_SECRET_KEY=TEST_SECRET,
        HERALD_SMTP_ALLOWED_NETWORKS=LOOPBACK_NETWORKS,
    )
    process = subprocess.Popen(
        [HERALD, "inbound", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not listening(port):
            assert process.poll() is None and time.monotonic() < deadline, process.stdout
            time.sleep(0.1)
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.sendmail(
                "", [tagged(runtime, org, send_id)], dsn_for(runtime, org, send_id, person.email)
            )
        assert get_send(runtime, send_id).status == "BOUNCED"
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert f"listening on 127.0.0.1:{port}" in output


def test_it_refuses_the_development_secret_key(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    done = subprocess.run(
        [HERALD, "inbound", "--port", str(free_port())],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "HERALD_SECRET_KEY" in done.stderr + done.stdout
