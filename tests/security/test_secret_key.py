"""A secret key shorter than 32 bytes is refused by every entry point: the app factory,
`herald serve` and `herald worker` (the published development key stays refused too)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from herald.app import create_app
from tests.conftest import make_settings

SHORT = "only-thirty-one-bytes-of-secret"  # 31 bytes


def test_the_app_factory_refuses_a_short_key(database_url):
    assert len(SHORT.encode()) == 31
    with pytest.raises(ValueError, match="HERALD_SECRET_KEY is shorter than 32 bytes"):
        create_app(make_settings(database_url, secret_key=SHORT))
    create_app(make_settings(database_url, secret_key=SHORT + "x"))  # 32 bytes: fine


@pytest.mark.parametrize("command", [["serve", "--port", "1"], ["worker"]])
def test_the_server_and_the_worker_refuse_a_short_key(database_url, command):
    env = {
        **os.environ,
        "HERALD_DATABASE_URL": database_url,
        "HERALD_SECRET_KEY": SHORT,
        "HERALD_ENV": "dev",  # even in dev mode
    }
    done = subprocess.run(
        [str(Path(sys.executable).parent / "herald"), *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "HERALD_SECRET_KEY is shorter than 32 bytes" in done.stderr
