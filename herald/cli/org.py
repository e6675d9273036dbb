"""`herald org`: create orgs and switch their licence features."""

from __future__ import annotations

import typer

from herald.cli.output import JSON_OPTION, cli_session, emit
from herald.orgs import service

app = typer.Typer(help="Organisations (tenants) and their licence.", no_args_is_help=True)


def _features(value: str) -> list[str]:
    return [f for f in value.split(",") if f.strip()]


@app.command("create")
def create(
    name: str = typer.Option(..., "--name", help="The organisation's name."),
    features: str = typer.Option("", "--features", help="Comma-separated, e.g. 'marketing'."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Create an org (with the default contact statuses) and print its id."""
    with cli_session(as_json) as session:
        org = service.create_org(session, name, _features(features))
        data = {"id": str(org.id), "name": org.name, "features": org.features}
    emit(data, as_json, str(data["id"]))


@app.command("features")
def features(
    org_id: str = typer.Option(..., "--org", help="The org id."),
    set_: str = typer.Option(
        None, "--set", help="Replace the features with this comma-separated list ('' for none)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show an org's licence features, or replace them with --set."""
    with cli_session(as_json) as session:
        org = service.get_org(session, org_id)
        if set_ is not None:
            service.set_features(session, org, _features(set_))
        data = {"id": str(org.id), "name": org.name, "features": org.features}
    emit(data, as_json, ",".join(org.features) or "(none)")
