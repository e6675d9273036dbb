"""`herald sends`: a campaign's sends (who received it) for an operator, as CSV."""

from __future__ import annotations

import os
import sys

import typer

from herald.cli.campaign import EXIT_INTERRUPTED
from herald.cli.output import operator_runtime, parse_status
from herald.db import unit_of_work
from herald.marketing import service
from herald.marketing.export import csv_chunks
from herald.marketing.models import SendStatus

app = typer.Typer(
    help="The sends of a campaign (one per recipient). "
    "Works on the database named by HERALD_DATABASE_URL, without a login.",
    no_args_is_help=True,
)


@app.command("export")
def export(
    campaign_id: str = typer.Argument(..., help="The campaign's id (a UUID)."),
    status: str = typer.Option(
        None,
        "--status",
        help="Only sends with this status: QUEUED, SENDING, DELIVERED, FAILED or UNKNOWN.",
    ),
) -> None:
    """Write a campaign's sends to stdout as CSV, as the API's sends.csv.

    Columns: email,firstName,lastName,status,deliveredAt,openedAt,error.
    One row per send, UTF-8, streamed page by page. Cells a spreadsheet would
    run as formulas start with an apostrophe.
    Uses the database named by HERALD_DATABASE_URL (no login).
    Example: herald sends export CAMPAIGN_ID > sends.csv
    """
    out = sys.stdout.buffer
    with operator_runtime() as runtime:
        wanted = parse_status(SendStatus, status, "send")
        with unit_of_work(runtime.sessions, write=False) as session:
            campaign = service.get_campaign_in_any_org(session, campaign_id)
        chunks = csv_chunks(
            runtime.sessions,
            campaign.org_id,
            campaign.id,
            status=wanted.value if wanted is not None else None,
        )
        try:
            for chunk in chunks:
                out.write(chunk.encode("utf-8"))
                out.flush()
        except BrokenPipeError:
            # The reader went away (e.g. `| head`): stop quietly, and keep Python's own
            # flush at exit from complaining about the closed pipe.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.echo("Export stopped: the output is incomplete.", err=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None
