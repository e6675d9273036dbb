"""Tests that need a Debian package skip, saying why, where it is missing, but fail in CI:
a CI without Postfix, Dovecot or Chromium must not pass by running none of their tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests import postfix_server
from tests.installed import require


def outcome(check: Callable[[], None]) -> type[BaseException]:
    with pytest.raises((pytest.fail.Exception, pytest.skip.Exception)) as raised:
        check()
    return raised.type


def test_a_missing_package_fails_in_ci_and_is_skipped_elsewhere(monkeypatch):
    def check() -> None:
        require("/nonexistent/dovecot", "apt-get install dovecot-imapd")

    monkeypatch.setenv("CI", "true")
    assert outcome(check) is pytest.fail.Exception
    monkeypatch.delenv("CI")
    assert outcome(check) is pytest.skip.Exception


def test_the_postfix_tests_fail_in_ci_without_postfix(monkeypatch):
    monkeypatch.setattr(postfix_server, "POSTFIX", "/nonexistent/postfix")
    monkeypatch.setenv("CI", "1")
    assert outcome(postfix_server.require_postfix) is pytest.fail.Exception
