"""`herald db`: schema migrations."""

from __future__ import annotations

import typer

from herald import migrate
from herald.settings import get_settings

app = typer.Typer(
    help="The database schema: apply the migrations to HERALD_DATABASE_URL.", no_args_is_help=True
)


@app.command("upgrade")
def upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Apply the migrations up to REVISION (default: the latest) on HERALD_DATABASE_URL."""
    settings = get_settings()
    migrate.upgrade(settings.database_url, revision)
    typer.echo(f"Database upgraded to {revision}.")
