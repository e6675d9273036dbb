"""What `herald dev` runs: migrate, the demo org, Herald's bounce receiver, the mail catcher,
then the web app with its worker, all in this process (see herald/cli/dev.py)."""

from __future__ import annotations

import logging
import socket
from typing import Any

import typer
import uvicorn

from herald import migrate
from herald.app import create_app
from herald.bounces.receiver import InboundThread
from herald.db import unit_of_work
from herald.dev.catcher import MailCatcher
from herald.dev.demo import BOUNCING, DemoLogin, ensure_demo
from herald.dev.mailbox import Mailbox
from herald.mail import egress
from herald.runtime import Runtime
from herald.settings import Settings, get_settings


def _refuse_busy_port(host: str, port: int, what: str, option: str) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            typer.echo(
                f"Error: port {port} on {host} ({what}) is in use. Stop what holds it, "
                f"or choose another with {option}.",
                err=True,
            )
            raise typer.Exit(2) from None


class _AnnouncingServer(uvicorn.Server):
    """Prints where to go once the app accepts connections."""

    def __init__(self, config: uvicorn.Config, lines: list[str]) -> None:
        super().__init__(config)
        self.lines = lines

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        if self.started:
            typer.echo("\n".join(["", *self.lines, "Press Ctrl-C to stop.", ""]))


def dev_settings(host: str, port: int) -> Settings:
    """Dev mode; links in the mail point at this server unless HERALD_BASE_URL says otherwise,
    and SMTP may go to the local mail catcher on loopback."""
    settings = get_settings()
    update: dict[str, Any] = {"env": "dev"}
    if "smtp_allowed_networks" not in settings.model_fields_set:
        update["smtp_allowed_networks"] = egress.LOOPBACK_V4
    if "base_url" not in settings.model_fields_set:
        update["base_url"] = f"http://{host}:{port}"
    return settings.model_copy(update=update)


def run(host: str, port: int, smtp_port: int, inbound_port: int) -> None:
    settings = dev_settings(host, port)
    _refuse_busy_port(host, port, "the web app", "--port")
    _refuse_busy_port("127.0.0.1", smtp_port, "the mail catcher", "--smtp-port")
    _refuse_busy_port("127.0.0.1", inbound_port, "the bounce receiver", "--inbound-port")
    migrate.upgrade(settings.database_url)
    runtime = Runtime.from_settings(settings)
    with unit_of_work(runtime.sessions) as session:
        login = ensure_demo(session, settings, settings.dev_dir, smtp_port)
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's per-connection chatter
    inbound_runtime = Runtime.from_settings(settings, durable=True)
    inbound = InboundThread(inbound_runtime, "127.0.0.1", inbound_port)
    inbound.start()
    catcher = MailCatcher(
        Mailbox(settings.mailbox_dir), port=smtp_port, receiver=("127.0.0.1", inbound_port)
    )
    catcher.start()
    try:
        config = uvicorn.Config(
            create_app(settings, runtime, embedded_worker=True),
            host=host,
            port=port,
            log_level=settings.log_level.lower(),
            access_log=False,
        )
        lines = announcement(settings, login, smtp_port, inbound_port)
        _AnnouncingServer(config, lines).run()
    finally:
        catcher.stop()
        inbound.stop()
        inbound_runtime.engine.dispose()
        runtime.engine.dispose()
        typer.echo(
            "Herald stopped: the web app, the worker, the mail catcher and the bounce receiver."
        )


def announcement(
    settings: Settings, login: DemoLogin, smtp_port: int, inbound_port: int
) -> list[str]:
    app_url = settings.base_url.rstrip("/")
    return [
        "Herald is running" + (" with a new demo org." if login.created else "."),
        f"App: {app_url}/",
        f"Inbox: {app_url}/dev/inbox",
        f"Login: {login.admin_email} / {login.password}",
        f"Manager login: {login.manager_email} / {login.password}",
        f"Mail catcher: smtp://127.0.0.1:{smtp_port} (messages kept in {settings.mailbox_dir})",
        f"Bounce receiver: smtp://127.0.0.1:{inbound_port} (the demo's bouncing contacts "
        f"are answered through it: {', '.join(sorted(BOUNCING))})",
    ]
