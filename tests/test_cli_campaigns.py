"""The operator's campaign commands, run as the real `herald` binary on the test database:
list, show, launch, stats (and --watch), schedule, unschedule, pause, resume, cancel, and
the sends CSV export."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from herald.audit.service import CLI, system_actor
from herald.db import unit_of_work
from herald.marketing.export import HEADER, csv_chunks
from herald.marketing.launch import launch_campaign
from herald.marketing.models import MarketingSend
from herald.marketing.schemas import CampaignOut
from herald.runtime import Runtime
from tests.marketing.engine import mark_delivered
from tests.marketing.factories import (
    NO_ENGAGEMENT,
    add_contact,
    ago,
    configure_email,
    get_campaign_row,
    insert_campaign,
    insert_sends,
)
from tests.orgs.factories import make_org

pytestmark = pytest.mark.slow  # a long file: the parallel run starts it first (conftest)

HERALD = str(Path(sys.executable).with_name("herald"))


@pytest.fixture(autouse=True)
def _retire_leftover_sends(fresh_queue: None) -> None:
    """Sends launched here never reach a later test's worker."""


def start(args: list[str], database_url: str, cwd: Path, text: bool = True) -> subprocess.Popen:
    env = {**os.environ, "HERALD_DATABASE_URL": database_url, "HERALD_LOG_LEVEL": "WARNING"}
    return subprocess.Popen(
        [HERALD, *args],
        env=env,
        cwd=cwd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=text,
    )


def finish(process: subprocess.Popen, args: list[str], input: Any = None):
    try:
        stdout, stderr = process.communicate(input, timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()  # a hung command must not outlive its test
        process.communicate()
        raise
    result = subprocess.CompletedProcess(args, process.returncode, stdout, stderr)
    assert "Traceback" not in str(stderr), stderr
    return result


def herald_all(database_url: str, cwd: Path, *commands: list[str], text: bool = True):
    """Run several commands at once (each one starts in about two seconds); their results."""
    processes = [start(args, database_url, cwd, text) for args in commands]
    return [finish(p, args) for p, args in zip(processes, commands, strict=True)]


def herald(args: list[str], database_url: str, cwd: Path, input: str | None = None):
    return finish(start(args, database_url, cwd), args, input)


def ok_json(result: subprocess.CompletedProcess) -> Any:
    assert result.returncode == 0, result.stderr + result.stdout
    return json.loads(result.stdout)


def draft(runtime: Runtime, *, smtp: bool = True) -> tuple[uuid.UUID, uuid.UUID]:
    """An org with two mailable contacts (and one opted out, one without an email) and a
    DRAFT to all of them; SMTP configured unless told otherwise. (org id, campaign id)"""
    org = make_org(runtime)
    if smtp:
        configure_email(runtime, org.id)
    tag = uuid.uuid4().hex[:8]
    add_contact(runtime, org.id, f"ann-{tag}@example.com")
    add_contact(runtime, org.id, f"bob-{tag}@example.com", status="CUSTOMER")
    add_contact(runtime, org.id, f"out-{tag}@example.com", opted_out=True)
    add_contact(runtime, org.id, None)
    campaign_id = insert_campaign(runtime, org.id, status="DRAFT", audience={"type": "ALL"})
    return org.id, campaign_id


def count_sends(runtime: Runtime, campaign_id: uuid.UUID) -> int:
    with unit_of_work(runtime.sessions, write=False) as session:
        counted = select(func.count()).where(MarketingSend.campaign_id == campaign_id)
        return int(session.scalar(counted) or 0)


def test_list_shows_every_org_newest_first_or_one_org(runtime, database_url, tmp_path):
    tag = uuid.uuid4().hex[:8]
    alpha = make_org(runtime, name=f"Alpha {tag}")
    beta = make_org(runtime, name=f"Beta {tag}")
    older = insert_campaign(
        runtime,
        alpha.id,
        status="SENT",
        name=f"Older {tag}",
        recipients=3,
        delivered=2,
        failed=1,
        opens=1,
        # a second older than `newer`, and newer than what other tests left in the shared
        # database, so both are on the list's first page
        created_at=ago(1),
    )
    newer = insert_campaign(runtime, beta.id, status="DRAFT", name=f"Newer {tag}")

    text, one = herald_all(
        database_url,
        tmp_path,
        ["campaign", "list"],
        ["campaign", "list", "--org", str(alpha.id), "--status", "sent", "--json"],
    )

    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    header = "ID ORG NAME STATUS RECIPIENTS DELIVERED FAILED OPENS CREATED (UTC)"
    assert lines[0].split() == header.split()
    older_line = next(line for line in lines if str(older) in line)
    newer_line = next(line for line in lines if str(newer) in line)
    assert lines.index(newer_line) < lines.index(older_line)
    assert f"Alpha {tag}" in older_line and f"Beta {tag}" in newer_line
    assert older_line.split()[4:10] == [f"{tag}", "SENT", "3", "2", "1", "1"]

    data = ok_json(one)
    assert (data["total"], data["page"], data["pageSize"]) == (1, 1, 50)
    [item] = data["items"]
    api_fields = {field.alias for field in CampaignOut.model_fields.values()}
    assert set(item) == api_fields | {"orgId", "orgName"}
    assert (item["id"], item["orgId"], item["orgName"]) == (
        str(older),
        str(alpha.id),
        f"Alpha {tag}",
    )
    assert (item["status"], item["recipients"], item["delivered"], item["failed"]) == (
        "SENT",
        3,
        2,
        1,
    )


def test_show_prints_every_field_as_the_api_does(runtime, database_url, tmp_path):
    org = make_org(runtime)
    campaign_id = insert_campaign(
        runtime, org.id, status="SENT", recipients=4, delivered=2, failed=1, unknown=1, opens=1
    )

    as_json, as_text = herald_all(
        database_url,
        tmp_path,
        ["campaign", "show", str(campaign_id), "--json"],
        ["campaign", "show", str(campaign_id)],
    )

    row = get_campaign_row(runtime, campaign_id)
    expected = CampaignOut.model_validate(row).model_dump(mode="json", by_alias=True)
    assert ok_json(as_json) == {**expected, "orgId": str(org.id), "orgName": org.name}
    assert as_text.returncode == 0, as_text.stderr
    assert "openRate" in as_text.stdout and "50.0%" in as_text.stdout
    assert "--- htmlBody ---\n<p>Hi {{firstName}}</p>" in as_text.stdout


def test_launch_asks_then_launches_once(runtime, database_url, tmp_path):
    _org_id, campaign_id = draft(runtime)

    declined = herald(["campaign", "launch", str(campaign_id)], database_url, tmp_path, "n\n")
    assert declined.returncode == 1
    assert "to 2 eligible recipients" in declined.stderr
    assert "Error: Not launched" in declined.stderr
    assert get_campaign_row(runtime, campaign_id).status == "DRAFT"

    launched = herald(
        ["campaign", "launch", str(campaign_id), "--yes", "--json"], database_url, tmp_path
    )
    assert ok_json(launched) == {"status": "SENDING", "recipients": 2}
    assert get_campaign_row(runtime, campaign_id).status == "SENDING"
    assert count_sends(runtime, campaign_id) == 2

    again = herald(["campaign", "launch", str(campaign_id), "--yes"], database_url, tmp_path)
    assert again.returncode == 1
    assert again.stderr.startswith("Error: Only a DRAFT campaign can be launched")
    assert count_sends(runtime, campaign_id) == 2


def test_launch_without_smtp_fails_the_campaign_with_the_reason(runtime, database_url, tmp_path):
    _org_id, campaign_id = draft(runtime, smtp=False)

    result = herald(
        ["campaign", "launch", str(campaign_id), "--yes", "--json"], database_url, tmp_path
    )

    assert result.returncode == 1
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "smtp_not_configured"
    assert "SMTP is not configured" in error["message"]
    row = get_campaign_row(runtime, campaign_id)
    assert row.status == "FAILED" and row.failure_reason == error["message"]
    assert count_sends(runtime, campaign_id) == 0


def test_stats_json_gives_the_api_figures(runtime, database_url, tmp_path):
    org = make_org(runtime)
    campaign_id = insert_campaign(
        runtime, org.id, status="SENDING", recipients=10, delivered=4, failed=1, unknown=1, opens=3
    )

    result = herald(["campaign", "stats", str(campaign_id), "--json"], database_url, tmp_path)

    assert ok_json(result) == {
        "status": "SENDING",
        "recipients": 10,
        "delivered": 4,
        "failed": 1,
        "unknown": 1,
        "pending": 4,
        "cancelled": 0,
        "opens": 3,
        "openRate": 0.75,
        "bounced": 0,
        "complaints": 0,
        **NO_ENGAGEMENT,
    }


def test_stats_watch_follows_until_sent_and_ctrl_c_stops_cleanly(runtime, database_url, tmp_path):
    org_id, campaign_id = draft(runtime)
    with unit_of_work(runtime.sessions) as session:
        launch_campaign(session, org_id, campaign_id, actor=system_actor(org_id, CLI))
    args = ["campaign", "stats", str(campaign_id), "--watch", "--interval", "0.2"]
    watcher = start(args, database_url, tmp_path)
    stopped = start(args, database_url, tmp_path)
    # The bar's label, once each is watching (stderr is not a terminal: no bar drawn).
    assert watcher.stderr.readline().strip() == "Sending"
    assert stopped.stderr.readline().strip() == "Sending"

    stopped.send_signal(signal.SIGINT)
    interrupted = finish(stopped, args)
    assert interrupted.returncode == 130
    assert "Stopped watching" in interrupted.stderr

    assert watcher.poll() is None  # still waiting for the sends
    mark_delivered(runtime, campaign_id)
    done = finish(watcher, args)
    assert done.returncode == 0, done.stderr
    figures = dict(line.rsplit(maxsplit=1) for line in done.stdout.splitlines())
    assert figures["Status"] == "SENT"
    assert (figures["Recipients"], figures["Delivered"], figures["Pending"]) == ("2", "2", "0")


def test_sends_export_writes_the_api_csv(runtime, database_url, tmp_path):
    org = make_org(runtime)
    campaign_id = insert_campaign(runtime, org.id, status="SENT", recipients=3)
    insert_sends(
        runtime,
        org.id,
        campaign_id,
        [
            {
                "email": "ann@example.com",
                "first_name": '=HYPERLINK("https://evil.example","x")',
                "status": "DELIVERED",
                "delivered_at": ago(30),
            },
            {"email": "bob@example.com", "status": "FAILED", "error": "550 5.1.1 No such user"},
            {"email": "cy@example.com", "last_name": "+1 Smith, Jr.", "status": "DELIVERED"},
        ],
    )

    whole, failed = herald_all(
        database_url,
        tmp_path,
        ["sends", "export", str(campaign_id)],
        ["sends", "export", str(campaign_id), "--status", "failed"],
        text=False,
    )

    assert whole.returncode == 0, whole.stderr
    api = "".join(csv_chunks(runtime.sessions, org.id, campaign_id)).encode()
    assert whole.stdout == api  # byte for byte what GET .../sends.csv streams
    rows = list(csv.reader(io.StringIO(whole.stdout.decode(), newline="")))
    assert rows[0] == list(HEADER)
    assert [r[0] for r in rows[1:]] == ["ann@example.com", "bob@example.com", "cy@example.com"]
    assert rows[1][1] == '\'=HYPERLINK("https://evil.example","x")'
    assert rows[3][2] == "'+1 Smith, Jr."

    assert failed.returncode == 0, failed.stderr
    kept = list(csv.reader(io.StringIO(failed.stdout.decode(), newline="")))
    assert kept == [list(HEADER), rows[2]]
    assert kept[1][6] == "550 5.1.1 No such user"


@pytest.mark.usefixtures("runtime")  # the migrated database
def test_unknown_or_malformed_ids_exit_1_with_a_message(database_url, tmp_path):
    unknown = str(uuid.uuid4())
    show, stats, export = herald_all(
        database_url,
        tmp_path,
        ["campaign", "show", unknown],
        ["campaign", "stats", "not-a-uuid", "--watch", "--json"],
        ["sends", "export", unknown],
    )

    assert (show.returncode, stats.returncode, export.returncode) == (1, 1, 1)
    assert show.stderr == "Error: Campaign not found.\n"
    error = json.loads(stats.stdout)["error"]  # --json: the contract's error object
    assert error["code"] == "validation_error"
    assert error["message"].startswith("'not-a-uuid' is not a campaign id")
    assert export.stderr == "Error: Campaign not found.\n" and export.stdout == ""


# --- sending control: schedule, unschedule, pause, resume, cancel


def test_schedule_then_unschedule_and_the_refusals(runtime, database_url, tmp_path):
    _org_id, campaign_id = draft(runtime)
    cid = str(campaign_id)
    scheduled, past, bad = herald_all(
        database_url,
        tmp_path,
        ["campaign", "schedule", cid, "--at", "2099-12-24T09:00+01:00", "--json"],
        ["campaign", "schedule", cid, "--at", "2020-01-01T09:00Z"],
        ["campaign", "schedule", cid, "--at", "next tuesday", "--json"],
    )
    # 2099 is more than a year ahead: refused; the others never got as far
    assert scheduled.returncode == past.returncode == bad.returncode == 1
    assert json.loads(scheduled.stdout)["error"]["message"] == "at must be at most a year from now."
    assert past.stderr == "Error: at must be in the future.\n"
    assert json.loads(bad.stdout)["error"]["message"].startswith("'next tuesday' is not a date")

    when = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).replace(second=0, microsecond=0)
    at = when.strftime("%Y-%m-%dT%H:%M") + "Z"
    scheduled = herald(["campaign", "schedule", cid, "--at", at, "--json"], database_url, tmp_path)
    data = ok_json(scheduled)
    assert data["status"] == "SCHEDULED"
    assert dt.datetime.fromisoformat(data["scheduledAt"]) == when
    text = herald(["campaign", "unschedule", cid], database_url, tmp_path)
    assert text.returncode == 0 and text.stdout.startswith("Unscheduled:")
    assert get_campaign_row(runtime, campaign_id).status == "DRAFT"
    again = herald(["campaign", "unschedule", cid], database_url, tmp_path)
    assert again.returncode == 1
    assert again.stderr.startswith("Error: Only a SCHEDULED campaign can be unscheduled")


def test_pause_resume_and_cancel_with_its_question(runtime, database_url, tmp_path):
    org = make_org(runtime)
    campaign_id = insert_campaign(runtime, org.id, "SENDING", recipients=3, delivered=1)
    insert_sends(
        runtime,
        org.id,
        campaign_id,
        [
            {"email": "a@example.com", "status": "DELIVERED"},
            {"email": "b@example.com", "status": "QUEUED"},
            {"email": "c@example.com", "status": "QUEUED"},
        ],
    )
    cid = str(campaign_id)
    paused = ok_json(herald(["campaign", "pause", cid, "--json"], database_url, tmp_path))
    assert (paused["status"], paused["pauseReason"]) == ("PAUSED", "Paused by herald CLI.")
    resumed = herald(["campaign", "resume", cid], database_url, tmp_path)
    assert resumed.stdout == "Resumed: SENDING, 2 message(s) to go.\n"

    declined = herald(["campaign", "cancel", cid], database_url, tmp_path, "n\n")
    assert declined.returncode == 1
    assert "2 message(s) not yet sent will never be sent" in declined.stderr
    assert get_campaign_row(runtime, campaign_id).status == "SENDING"
    cancelled = herald(["campaign", "cancel", cid, "--yes", "--json"], database_url, tmp_path)
    data = ok_json(cancelled)
    assert (data["status"], data["cancelled"], data["pending"]) == ("CANCELLED", 2, 0)
    again = herald(["campaign", "pause", cid], database_url, tmp_path)
    assert again.returncode == 1 and "Only a SENDING campaign can be paused" in again.stderr


@pytest.mark.parametrize("command", ["schedule", "unschedule", "pause", "resume", "cancel"])
def test_the_control_commands_explain_themselves(database_url, tmp_path, command):
    result = herald(["campaign", command, "--help"], database_url, tmp_path)
    assert result.returncode == 0
    assert "--json" in result.stdout and "ID" in result.stdout
