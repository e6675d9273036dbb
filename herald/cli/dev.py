"""`herald dev` (what `make run` starts): the whole product on one machine for a trial."""

from __future__ import annotations

import typer


def dev(
    host: str = typer.Option("127.0.0.1", "--host", help="Address of the web app."),
    port: int = typer.Option(8000, "--port", help="Port of the web app."),
    smtp_port: int = typer.Option(
        1025, "--smtp-port", help="Port of the local mail catcher (SMTP, on 127.0.0.1)."
    ),
    inbound_port: int = typer.Option(
        2525, "--inbound-port", help="Port of Herald's bounce receiver (SMTP, on 127.0.0.1)."
    ),
) -> None:
    """Try Herald on this machine: migrate the database, create the demo org once (an ADMIN,
    a MANAGER, about 200 contacts, two draft campaigns), then run the web app, a sending worker,
    a local mail catcher whose messages show on the Inbox page, and Herald's bounce receiver
    (the catcher answers three demo contacts with a hard bounce, a soft bounce and a
    complaint, sent through it). Prints the URL and the login. Ctrl-C stops everything.
    Data stays under ./data (HERALD_DATABASE_URL and HERALD_DEV_DIR move it); a second run
    reuses it.
    """
    from herald.dev.run import run  # imported when used: the web app is heavy to import

    run(host, port, smtp_port, inbound_port)
