"""Fixtures for the mail package's tests: real SMTP servers on loopback."""

from tests.smtp_server import smtp_server as smtp_server
from tests.smtp_server import start_smtp_server as start_smtp_server
