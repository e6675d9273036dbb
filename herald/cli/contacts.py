"""`herald contacts`: import a CSV file of contacts into an org, and list them."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from herald.cli.output import JSON_OPTION, cli_session, emit
from herald.crm import service
from herald.crm.importer import ImportResult, import_contacts
from herald.crm.schemas import ContactOut
from herald.orgs.service import get_org
from herald.schemas import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

app = typer.Typer(help="CRM contacts of an org: import a CSV, list them.", no_args_is_help=True)

SHOWN_ERRORS = 20


def _summary(result: ImportResult) -> str:
    lines = [f"Created {result.created}, updated {result.updated}, skipped {result.skipped}."]
    lines += [f"  line {e.line}: {e.message}" for e in result.errors[:SHOWN_ERRORS]]
    if result.skipped > SHOWN_ERRORS:
        lines.append(f"  ... and {result.skipped - SHOWN_ERRORS} more skipped rows.")
    return "\n".join(lines)


@app.command("import")
def import_(
    file: Path = typer.Argument(
        ..., exists=True, dir_okay=False, readable=True, help="A UTF-8 CSV file with a header."
    ),
    org_id: str = typer.Option(..., "--org", help="The org id."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Import contacts from a CSV file (header: email,firstName,lastName,companyName,status,
    marketingOptOut). A row whose email exists updates that contact. Committed in chunks of
    1,000 rows; a problem with the file itself changes nothing."""
    size = file.stat().st_size
    with cli_session(as_json) as session:
        org = get_org(session, org_id)
        with (
            file.open("rb") as source,
            typer.progressbar(
                length=size, label="Importing", file=sys.stderr, hidden=as_json
            ) as bar,
        ):
            done = 0

            def advance(position: int) -> None:
                nonlocal done
                bar.update(position - done)
                done = position

            result = import_contacts(
                source, session, org.id, progress=advance, commit=session.commit
            )
    emit(result.as_dict(), as_json, _summary(result))


@app.command("list")
def list_(
    org_id: str = typer.Option(..., "--org", help="The org id."),
    status: str = typer.Option(None, "--status", help="Only contacts with this status."),
    query: str = typer.Option(None, "--q", help="Part of the email, first, last or company name."),
    page: int = typer.Option(1, "--page", min=1),
    page_size: int = typer.Option(DEFAULT_PAGE_SIZE, "--page-size", min=1, max=MAX_PAGE_SIZE),
    as_json: bool = JSON_OPTION,
) -> None:
    """List an org's contacts, newest first."""
    with cli_session(as_json) as session:
        org = get_org(session, org_id)
        found = service.list_contacts(
            session, org.id, status=status, query=query, page=page, page_size=page_size
        )
        items = [
            ContactOut.model_validate(c).model_dump(mode="json", by_alias=True) for c in found.items
        ]
    data = {"items": items, "total": found.total, "page": page, "pageSize": page_size}
    text = "\n".join(
        f"{c['id']}  {c['status']:<10} {c['email'] or '-'}  {c['firstName']} {c['lastName']}"
        for c in items
    )
    emit(data, as_json, f"{text}\n({found.total} contacts)" if items else "(no contacts)")
