"""`herald inbound`: the SMTP receiver for bounce domains."""

from __future__ import annotations

import asyncio
import signal

import typer

from herald.cli.output import require_secret_key
from herald.log import configure_logging
from herald.settings import get_settings


def inbound(
    host: str = typer.Option("0.0.0.0", "--host", help="Address to listen on."),  # noqa: S104
    port: int = typer.Option(25, "--port", help="Port to listen on (SMTP)."),
) -> None:
    """Receive bounces and complaints by mail: run this where the bounce domain's MX points.

    It accepts mail only for the orgs' bounce addresses (never relays), up to 10 MiB a
    message, and answers 250 once the report is stored. Ctrl-C or SIGTERM stop it after the
    reports in hand are stored.
    """
    from herald.bounces.receiver import InboundServer
    from herald.runtime import Runtime

    settings = get_settings()
    require_secret_key(settings)
    configure_logging(settings.log_level, settings.log_json)
    runtime = Runtime.from_settings(settings, durable=True)

    async def main() -> None:
        server = InboundServer(runtime, host, port)
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        await server.start()
        typer.echo(f"Herald bounce receiver listening on {host}:{port}")
        await stopping.wait()
        await server.stop()

    try:
        asyncio.run(main())
    except OSError as exc:
        typer.echo(f"Error: cannot listen on {host}:{port}: {exc.strerror}", err=True)
        raise typer.Exit(2) from None
    finally:
        runtime.engine.dispose()
