"""`herald campaign`: list, inspect, launch and watch any org's campaigns from the shell.

The operator has the database, so campaigns are found by id alone (ids are globally unique).
"""

from __future__ import annotations

import datetime as dt
import sys
import threading
import uuid
from collections.abc import Callable
from typing import Any

import typer
from sqlalchemy.orm import Session

from herald.audit import service as audit
from herald.cli.output import JSON_OPTION, ctrl_c_flag, emit, operator_runtime, parse_status
from herald.db import unit_of_work
from herald.errors import Conflict, HeraldError, ValidationFailed
from herald.marketing import control, service
from herald.marketing.audience import count_eligible
from herald.marketing.launch import launch_campaign
from herald.marketing.models import Campaign, CampaignStatus
from herald.marketing.schemas import CampaignOut, LaunchOut, StatsOut
from herald.orgs.service import get_org
from herald.runtime import Runtime
from herald.schemas import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

app = typer.Typer(
    help="Email campaigns of every org: list, show, launch, schedule, pause, resume, cancel, "
    "and follow their sending. Works on the database named by HERALD_DATABASE_URL, without "
    "a login.",
    no_args_is_help=True,
)

EXIT_INTERRUPTED = 130  # the shell's code for a command stopped by Ctrl-C (128 + SIGINT)
NAME_WIDTH = 40

CAMPAIGN_ID = typer.Argument(..., help="The campaign's id (a UUID, as `herald campaign list`).")
YES_OPTION = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation (for scripts).")


def _campaign_json(campaign: Campaign, org_name: str) -> dict[str, Any]:
    """The API's CampaignOut, plus the org the campaign belongs to."""
    data = CampaignOut.model_validate(campaign).model_dump(mode="json", by_alias=True)
    return {**data, "orgId": str(campaign.org_id), "orgName": org_name}


def _stats_json(campaign: Campaign) -> dict[str, Any]:
    return StatsOut.model_validate(campaign).model_dump(mode="json", by_alias=True)


def _when(value: str | None) -> str:
    if not value:
        return "-"
    return dt.datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M")


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _table(rows: list[list[str]]) -> str:
    """Left-aligned columns, numbers (all digits) right-aligned, two spaces apart."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(width) if cell.isdigit() else cell.ljust(width)
            for cell, width in zip(row, widths, strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _list_text(items: list[dict[str, Any]], total: int, page: int, all_orgs: bool) -> str:
    if not items:
        return "(no campaigns)"
    header = ["ID", "ORG"] if all_orgs else ["ID"]
    header += ["NAME", "STATUS", "RECIPIENTS", "DELIVERED", "FAILED", "OPENS", "CREATED (UTC)"]
    rows = [header]
    for c in items:
        row = [c["id"]]
        if all_orgs:
            row.append(_short(c["orgName"], 24))
        row += [_short(c["name"], NAME_WIDTH), c["status"]]
        row += [str(c[key]) for key in ("recipients", "delivered", "failed", "opens")]
        rows.append([*row, _when(c["createdAt"])])
    noun = "campaign" if total == 1 else "campaigns"
    shown = f"({total} {noun})"
    if total > len(items):
        shown = f"(page {page}: {len(items)} of {total} {noun}; --page for more)"
    return f"{_table(rows)}\n{shown}"


def _stats_text(stats: dict[str, Any]) -> str:
    labels = {
        "status": "Status",
        "recipients": "Recipients",
        "delivered": "Delivered",
        "failed": "Failed",
        "unknown": "Unknown",
        "pending": "Pending",
        "bounced": "Bounced",
        "complaints": "Complaints",
        "opens": "Opens",
        "openRate": "Open rate",
        "humanOpens": "Human opens",
        "machineOpens": "Machine opens",
        "humanOpenRate": "Human open rate",
        "clicks": "Clicks",
        "machineClicks": "Machine clicks",
        "clickRate": "Click rate",
        "unsubscribes": "Unsubscribes",
    }
    width = max(len(label) for label in labels.values())
    lines = [
        f"{label:<{width}} {stats[key]:.1%}"
        if key.endswith("Rate")
        else f"{label:<{width}} {stats[key]}"
        for key, label in labels.items()
    ]
    return "\n".join(lines)


def _show_text(data: dict[str, Any]) -> str:
    bodies = ("htmlBody", "textBody")
    width = max(len(key) for key in data)
    lines = []
    for key, value in data.items():
        if key in bodies:
            continue
        shown = "-" if value is None or value == "" else value
        if key.endswith("Rate"):
            shown = f"{value:.1%}"
        elif key == "audience":
            statuses = ", ".join(value.get("statuses") or [])
            source = value.get("campaignId")  # a follow-up: who did not open/click that one
            shown = value["type"] + (f": {statuses}" if statuses else "")
            shown += f" of campaign {source}" if source else ""
        lines.append(f"{key:<{width}}  {shown}")
    for key in bodies:
        lines += ["", f"--- {key} ---", data[key] or "(empty)"]
    return "\n".join(lines)


@app.command("list")
def list_(
    org_id: str = typer.Option(
        None, "--org", help="Only this org's campaigns (its id). Default: every org's."
    ),
    status: str = typer.Option(
        None,
        "--status",
        help="Only campaigns with this status: DRAFT, SCHEDULED, SENDING, PAUSED, SENT, "
        "CANCELLED or FAILED.",
    ),
    page: int = typer.Option(1, "--page", min=1, help="Which page of results, from 1."),
    page_size: int = typer.Option(
        DEFAULT_PAGE_SIZE, "--page-size", min=1, max=MAX_PAGE_SIZE, help="Campaigns per page."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """List campaigns, newest first, with their counts.

    Without --org: every org's campaigns, with an ORG column.
    --json prints {"items", "total", "page", "pageSize"}; each item is the
    campaign as the API shows it, plus orgId and orgName.
    Uses the database named by HERALD_DATABASE_URL (no login).
    """
    with operator_runtime(as_json) as runtime, unit_of_work(runtime.sessions, write=False) as s:
        wanted = parse_status(CampaignStatus, status, "campaign")
        if org_id is None:
            every = service.list_campaigns_in_all_orgs(
                s, status=wanted, page=page, page_size=page_size
            )
            items = [_campaign_json(c, name) for c, name in every.items]
            total = every.total
        else:
            org = get_org(s, org_id)
            found = service.list_campaigns(s, org.id, status=wanted, page=page, page_size=page_size)
            items = [_campaign_json(c, org.name) for c in found.items]
            total = found.total
    data = {"items": items, "total": total, "page": page, "pageSize": page_size}
    emit(data, as_json, _list_text(items, total, page, all_orgs=org_id is None))


@app.command("show")
def show(campaign_id: str = CAMPAIGN_ID, as_json: bool = JSON_OPTION) -> None:
    """Show every field of a campaign, with its counts and its org.

    --json prints the campaign as the API does (camelCase), plus orgId and orgName.
    Uses the database named by HERALD_DATABASE_URL (no login).
    """
    with operator_runtime(as_json) as runtime, unit_of_work(runtime.sessions, write=False) as s:
        campaign = service.get_campaign_in_any_org(s, campaign_id)
        data = _campaign_json(campaign, get_org(s, campaign.org_id).name)
    emit(data, as_json, _show_text(data))


def _yes(question: str) -> bool:
    """Ask on stderr (typer.confirm would put a space on stdout, before any --json output);
    no answer (stdin closed, Ctrl-C) is a no."""
    typer.echo(f"{question} [y/N]: ", nl=False, err=True)
    try:
        answer = sys.stdin.readline()
    except KeyboardInterrupt:
        answer = ""
    if not answer.endswith("\n"):
        typer.echo(err=True)
    return answer.strip().lower() in ("y", "yes")


def _confirm(question: str, done: str) -> None:
    """Ask; anything but yes stops the command (exit 1) with ``Not <done>``."""
    if not _yes(question):
        raise HeraldError(
            f"Not {done} (answer y at the prompt, or pass --yes).", code="not_confirmed"
        )


def _confirm_launch(runtime: Runtime, campaign_id: str) -> None:
    """Ask before launching, naming how many contacts would be mailed now."""
    with unit_of_work(runtime.sessions, write=False) as session:
        campaign = service.get_campaign_in_any_org(session, campaign_id)
        if campaign.status != CampaignStatus.DRAFT.value:
            raise Conflict(
                f"Only a DRAFT campaign can be launched; this one is {campaign.status}.",
                code="not_draft",
            )
        eligible = count_eligible(session, campaign.org_id, campaign.audience)
        org_name = get_org(session, campaign.org_id).name
    question = (
        f"Launch {campaign.name!r} (org {org_name!r}) to {eligible} eligible "
        f"recipient{'' if eligible == 1 else 's'} now?"
    )
    _confirm(question, "launched")


@app.command("launch")
def launch(
    campaign_id: str = CAMPAIGN_ID,
    yes: bool = YES_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Launch a DRAFT campaign, as the API's launch does.

    Queues one send per eligible contact (with an email, not opted out, in the
    audience) and the campaign becomes SENDING; a running worker (herald worker,
    or herald serve) sends them.
    Unless --yes, first asks, showing how many contacts would be mailed.
    Exits 1 unless the campaign is a DRAFT. Without the org's SMTP settings or a
    sender address the campaign becomes FAILED, and the reason is printed.
    --json prints {"status", "recipients"}.
    Uses the database named by HERALD_DATABASE_URL (no login).
    """
    with operator_runtime(as_json) as runtime:
        if not yes:
            _confirm_launch(runtime, campaign_id)
        with unit_of_work(runtime.sessions) as session:
            campaign = service.get_campaign_in_any_org(session, campaign_id)
            campaign = launch_campaign(
                session,
                campaign.org_id,
                campaign.id,
                actor=audit.system_actor(campaign.org_id, audit.CLI),
            )
            result = LaunchOut(status=campaign.status, recipients=campaign.recipients)
    data = result.model_dump(mode="json", by_alias=True)
    emit(data, as_json, f"Launched: {result.status}, {result.recipients} recipients.")


def _read_stats(runtime: Runtime, campaign_id: str) -> tuple[dict[str, Any], str | None]:
    """The figures, and why sending is paused (the org's SMTP server unreachable) if it is."""
    with unit_of_work(runtime.sessions, write=False) as session:
        campaign = service.get_campaign_in_any_org(session, campaign_id)
        return _stats_json(campaign), campaign.hold_reason


def _done(stats: dict[str, Any]) -> int:
    return int(stats["delivered"] + stats["failed"] + stats["unknown"])


def _label(status: str, hold: str | None) -> str:
    if status != CampaignStatus.SENDING.value:
        return status.capitalize()
    return f"Held: {_short(' '.join(hold.split()), 60)}" if hold else "Sending"


def _watch(runtime: Runtime, campaign_id: str, interval: float, hidden: bool) -> dict[str, Any]:
    """Poll until the campaign is no longer SENDING, drawing its progress on stderr; Ctrl-C
    (checked between two looks) raises KeyboardInterrupt."""
    with ctrl_c_flag() as ctrl_c:
        return _poll(runtime, campaign_id, interval, hidden, ctrl_c)


def _poll(
    runtime: Runtime, campaign_id: str, interval: float, hidden: bool, ctrl_c: threading.Event
) -> dict[str, Any]:
    stats, hold = _read_stats(runtime, campaign_id)
    if stats["status"] != CampaignStatus.SENDING.value:
        return stats
    with typer.progressbar(
        length=max(stats["recipients"], 1),
        label="Sending",
        show_pos=True,
        file=sys.stderr,
        hidden=hidden,
    ) as bar:
        shown = 0
        while True:
            sending = stats["status"] == CampaignStatus.SENDING.value
            bar.label = _label(stats["status"], hold)
            if _done(stats) > shown:
                bar.update(_done(stats) - shown)
                shown = _done(stats)
            bar.render_progress()  # also when only the label changed
            if not sending:
                break
            if ctrl_c.wait(interval):
                raise KeyboardInterrupt
            stats, hold = _read_stats(runtime, campaign_id)
    return stats


@app.command("stats")
def stats(
    campaign_id: str = CAMPAIGN_ID,
    watch: bool = typer.Option(
        False,
        "--watch",
        help="Show a progress bar (on stderr) until the campaign is no longer SENDING, then "
        "print the final figures. Ctrl-C stops watching (exit code 130); sending goes on.",
    ),
    interval: float = typer.Option(
        1.0, "--interval", min=0.1, help="With --watch: seconds between two looks."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """A campaign's figures, as the API's stats; --watch follows its sending.

    Status, recipients, delivered, failed, unknown (the mail server may have
    taken it; never re-sent on its own), pending, bounced (part of failed),
    complaints, opens and the open rate (opens / delivered), human and machine
    opens, clicks (sends a person clicked), machine clicks (sends only machines
    clicked), the click rate (clicks / delivered) and unsubscribes.
    --json prints {"status", "recipients", "delivered", "failed", "unknown",
    "pending", "opens", "openRate", "bounced", "complaints", "humanOpens",
    "machineOpens", "humanOpenRate", "clicks", "machineClicks", "clickRate",
    "unsubscribes"}.
    Uses the database named by HERALD_DATABASE_URL (no login).
    """
    with operator_runtime(as_json) as runtime:
        try:
            if watch:
                figures = _watch(runtime, campaign_id, interval, hidden=as_json)
            else:
                figures, _hold = _read_stats(runtime, campaign_id)
        except KeyboardInterrupt:
            typer.echo("\nStopped watching; the campaign goes on sending.", err=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None
    emit(figures, as_json, _stats_text(figures))


# --- sending control


def _control(
    campaign_id: str,
    as_json: bool,
    change: Callable[..., Campaign],
    done: Callable[[Campaign], str],
) -> None:
    """Apply one sending-control change as the CLI, print the campaign (or a sentence)."""
    with operator_runtime(as_json) as runtime, unit_of_work(runtime.sessions) as session:
        found = service.get_campaign_in_any_org(session, campaign_id)
        actor = audit.system_actor(found.org_id, audit.CLI)
        campaign = change(session, found.org_id, str(found.id), actor=actor)
        data = _campaign_json(campaign, get_org(session, campaign.org_id).name)
        text = done(campaign)
    emit(data, as_json, text)


def _at(value: str) -> dt.datetime:
    """An ISO 8601 time; without an offset, this machine's local time."""
    try:
        moment = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValidationFailed(
            f"{value!r} is not a date and time such as 2026-12-24T09:00+01:00.", field="at"
        ) from None
    return moment if moment.tzinfo is not None else moment.astimezone()


def _utc(moment: dt.datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "-"


@app.command("schedule")
def schedule(
    campaign_id: str = CAMPAIGN_ID,
    at: str = typer.Option(
        ...,
        "--at",
        help="When to send it, ISO 8601: 2026-12-24T09:00+01:00, or ...Z for UTC; without an "
        "offset, this machine's local time.",
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Schedule a DRAFT campaign: a running worker launches it at that time.

    Who is eligible is decided when it launches. Exits 1 unless the campaign is a
    DRAFT, the time is in the future and within a year, and the org's SMTP settings
    and a sender address are there. A campaign found more than
    HERALD_SCHEDULE_GRACE_SECONDS late (no worker was running) goes back to DRAFT.
    --json prints the campaign, as `herald campaign show --json`.
    """

    def at_that_time(
        session: Session, org_id: uuid.UUID, campaign_id: str, *, actor: audit.Actor
    ) -> Campaign:
        return control.schedule_campaign(session, org_id, campaign_id, _at(at), actor=actor)

    _control(
        campaign_id,
        as_json,
        at_that_time,
        lambda c: f"Scheduled: {c.name!r} will be sent at {_utc(c.scheduled_at)}.",
    )


@app.command("unschedule")
def unschedule(campaign_id: str = CAMPAIGN_ID, as_json: bool = JSON_OPTION) -> None:
    """Take a SCHEDULED campaign back to DRAFT (editable again). Exits 1 otherwise.

    --json prints the campaign.
    """
    _control(
        campaign_id,
        as_json,
        control.unschedule_campaign,
        lambda c: f"Unscheduled: {c.name!r} is a DRAFT again.",
    )


@app.command("pause")
def pause(campaign_id: str = CAMPAIGN_ID, as_json: bool = JSON_OPTION) -> None:
    """Pause a SENDING campaign: once this returns no new message starts; those in
    flight (at most 100 per worker) complete. Exits 1 unless SENDING.

    --json prints the campaign.
    """
    _control(
        campaign_id,
        as_json,
        control.pause_campaign,
        lambda c: f"Paused: {c.pending} message(s) wait for `herald campaign resume`.",
    )


@app.command("resume")
def resume(campaign_id: str = CAMPAIGN_ID, as_json: bool = JSON_OPTION) -> None:
    """Resume a PAUSED campaign (also one that paused itself, once the cause is fixed):
    the messages still queued go out, one per contact. Exits 1 unless PAUSED.

    --json prints the campaign.
    """
    _control(
        campaign_id,
        as_json,
        control.resume_campaign,
        lambda c: f"Resumed: {c.status}, {c.pending} message(s) to go.",
    )


def _confirm_cancel(runtime: Runtime, campaign_id: str) -> None:
    """Ask before cancelling, naming how many messages would never be sent."""
    with unit_of_work(runtime.sessions, write=False) as session:
        campaign = service.get_campaign_in_any_org(session, campaign_id)
        not_sent = control.not_sent_if_cancelled(session, campaign.org_id, campaign)
    what = (
        "it will not be sent at its scheduled time"
        if campaign.status == CampaignStatus.SCHEDULED.value
        else f"{not_sent} message(s) not yet sent will never be sent"
    )
    _confirm(f"Cancel {campaign.name!r} ({campaign.status})? {what}.", "cancelled")


@app.command("cancel")
def cancel(
    campaign_id: str = CAMPAIGN_ID,
    yes: bool = YES_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Cancel a SCHEDULED, SENDING or PAUSED campaign, for good: its queued messages
    are never sent (counted as cancelled); those in flight complete. Duplicate it to
    send it again. Unless --yes, first asks, showing how many would not be sent.
    Exits 1 for any other status.

    --json prints the campaign.
    """
    with operator_runtime(as_json) as runtime:
        if not yes:
            _confirm_cancel(runtime, campaign_id)
    _control(
        campaign_id,
        as_json,
        control.cancel_campaign,
        lambda c: f"Cancelled: {c.cancelled} message(s) will never be sent.",
    )
