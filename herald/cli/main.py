"""The `herald` command: one sub-command group per noun."""

from __future__ import annotations

import typer

from herald.cli import campaign, contacts, db, dev, inbound, org, sends, serve, user, worker

app = typer.Typer(
    name="herald",
    help="Herald: bulk email campaigns for CRM contacts.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(db.app, name="db")
app.add_typer(org.app, name="org")
app.add_typer(user.app, name="user")
app.add_typer(contacts.app, name="contacts")
app.add_typer(campaign.app, name="campaign")
app.add_typer(sends.app, name="sends")
app.command("serve")(serve.serve)
app.command("worker")(worker.worker)
app.command("inbound")(inbound.inbound)
app.command("dev")(dev.dev)
