"""Tests that need a Debian package (Chromium, Postfix, Dovecot): skipped, saying why, on a
machine without it; failed in CI (CI set), which installs them all and must run them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def require(program: str | Path, install: str) -> None:
    """Go on only where ``program`` exists; ``install`` says how to get it."""
    if Path(program).exists():
        return
    message = f"{program} is missing: {install}"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI must run these tests)")
    pytest.skip(message)
