"""`herald worker`: a sending worker process."""

from __future__ import annotations

import asyncio
import signal

import typer

from herald.cli.output import require_secret_key
from herald.log import configure_logging
from herald.settings import get_settings


def worker(
    concurrency: int = typer.Option(
        4, "--concurrency", min=1, max=64, help="SMTP connections per mail server."
    ),
) -> None:
    """Send queued messages until stopped (SIGTERM or Ctrl-C finish in-flight messages);
    also ingest the mail services' webhook calls and poll the bounce mailboxes.

    Run as many as you like, on one machine (SQLite) or many sharing one PostgreSQL:
    every batch of 100 sends, webhook call and mailbox poll goes to exactly one worker.
    """
    from herald.bounces.jobs import BounceJobs
    from herald.marketing.worker import Worker
    from herald.runtime import Runtime

    settings = get_settings()
    require_secret_key(settings)
    configure_logging(settings.log_level, settings.log_json)
    runtime = Runtime.from_settings(settings)
    sender = Worker(runtime, concurrency=concurrency)
    bounce_jobs = BounceJobs(runtime, owner=sender.owner)

    def stop() -> None:
        sender.stop()
        bounce_jobs.stop()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop)
        await asyncio.gather(sender.run(), bounce_jobs.run())

    try:
        asyncio.run(main())
    finally:
        runtime.dispose()
