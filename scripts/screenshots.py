"""Regenerate docs/screenshots/*.png: every page of Herald in Debian's Chromium, at desktop
width and (for a few) phone width, against a throwaway database with sample data.

    make screenshots
"""

from __future__ import annotations

import re
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from herald.audit.service import CLI, system_actor  # noqa: E402
from herald.db import unit_of_work  # noqa: E402
from herald.dev.mailbox import Mailbox  # noqa: E402
from herald.marketing.launch import launch_campaign  # noqa: E402
from herald.marketing.models import Campaign  # noqa: E402
from herald.runtime import Runtime  # noqa: E402
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, log_in  # noqa: E402
from tests.conftest import LiveServer, free_port, make_settings, reset_schema  # noqa: E402
from tests.marketing.engine import add_contacts, configure_smtp, wait_until  # noqa: E402
from tests.orgs.factories import make_org, make_user  # noqa: E402
from tests.smtp_server import SmtpServer, reject  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
HTML = """<html><head><style>h1{color:#2f5bea;font-family:Helvetica,Arial}</style></head>
<body><h1>Hello {{firstName|there}}!</h1><p>Our spring catalogue is out, with offers picked
for {{companyName|you}}.</p><p><a href="https://example.com">See the catalogue</a></p>
</body></html>"""


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="herald-shots-"))
    port = free_port()
    settings = make_settings(
        f"sqlite:///{workdir / 'shots.db'}", base_url=f"http://127.0.0.1:{port}", log_level="ERROR"
    )
    runtime = Runtime.from_settings(settings)
    reset_schema(runtime)
    smtp = SmtpServer().start()
    server = LiveServer(runtime, port=port, embedded_worker=True).start()
    try:
        org = make_org(runtime, name="Acme Gardening")
        admin = make_user(runtime, org, "ADMIN")
        configure_smtp(runtime, org.id, smtp.port)
        names = ["ann", "bob", "chloe", "dmitri", "emeka", "fatima", "gus", "hana", "ines"]
        emails = [f"{n}.{uuid.uuid4().hex[:4]}@example.com" for n in names]
        add_contacts(runtime, org.id, emails, first_name="Zoë", last_name="Martín")
        smtp.script(emails[3], reject("550 5.1.1 No such mailbox"))
        with unit_of_work(runtime.sessions) as session:
            common = {"org_id": org.id, "html_body": HTML, "audience": {"type": "ALL"}}
            sent = Campaign(name="Spring catalogue", subject="Offers for {{firstName}}", **common)
            draft = Campaign(name="Autumn preview", subject="Autumn is coming", **common)
            session.add_all([sent, draft])
            session.flush()
            sent_id, draft_id = sent.id, draft.id
        with unit_of_work(runtime.sessions) as session:
            launch_campaign(session, org.id, sent_id, actor=system_actor(org.id, CLI))
        wait_until(lambda: _status(runtime, sent_id) == "SENT", timeout=60)
        _shoot(server.url, admin, sent_id, draft_id)
        # The Inbox of `herald dev`: a dev-mode app on the same database, its mailbox holding
        # what the test SMTP server received (as the dev mail catcher would have kept it).
        dev_settings = settings.model_copy(update={"env": "dev", "dev_dir": workdir / "dev"})
        mailbox = Mailbox(dev_settings.mailbox_dir)
        for received in smtp.messages:
            mailbox.save(received.data)
        dev_runtime = Runtime(
            settings=dev_settings, engine=runtime.engine, sessions=runtime.sessions
        )
        dev_server = LiveServer(dev_runtime).start()
        try:
            _shoot_inbox(dev_server.url, admin, mailbox.ids()[0])
        finally:
            dev_server.stop()
    finally:
        server.stop()
        smtp.stop()
        runtime.engine.dispose()


def _status(runtime: Runtime, campaign_id: uuid.UUID) -> str:
    with unit_of_work(runtime.sessions, write=False) as session:
        row = session.get(Campaign, campaign_id)
        return row.status if row else ""


def _shoot(url: str, admin, sent_id: uuid.UUID, draft_id: uuid.UUID) -> None:  # type: ignore[no-untyped-def]
    pages = {
        "marketing-list": "/marketing",
        "campaign-detail": f"/marketing/campaigns/{sent_id}",
        "campaign-form": f"/marketing/campaigns/{draft_id}/edit",
        "email-log": f"/marketing/campaigns/{sent_id}/log",
        "crm-contacts": "/crm/contacts",
        "crm-import": "/crm/import",
        "settings-email": "/settings/email",
        "settings-users": "/settings/users",
        "settings-account": "/settings/account",
    }
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        for width, suffix in ((1280, ""), (390, "-phone")):
            context = browser.new_context(base_url=url, viewport={"width": width, "height": 900})
            page = context.new_page()
            page.goto("/login")
            page.screenshot(path=str(OUT / f"login{suffix}.png"), full_page=True)
            log_in(page, admin)
            for name, path in pages.items():
                if suffix and name not in ("marketing-list", "campaign-detail", "crm-contacts"):
                    continue
                page.goto(path)
                time.sleep(0.3)
                page.screenshot(path=str(OUT / f"{name}{suffix}.png"), full_page=True)
                print(f"{name}{suffix}: {re.sub(r'[0-9a-f-]{36}', '<id>', path)}")
            context.close()
        browser.close()


def _shoot_inbox(url: str, admin, message_id: str) -> None:  # type: ignore[no-untyped-def]
    pages = {"dev-inbox": "/dev/inbox", "dev-inbox-message": f"/dev/inbox/{message_id}"}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        for width, suffix in ((1280, ""), (390, "-phone")):
            context = browser.new_context(base_url=url, viewport={"width": width, "height": 900})
            page = context.new_page()
            log_in(page, admin)
            for name, path in pages.items():
                page.goto(path)
                if name == "dev-inbox-message":
                    page.frame_locator("iframe.preview").locator("h1").wait_for()
                time.sleep(0.3)
                page.screenshot(path=str(OUT / f"{name}{suffix}.png"), full_page=True)
                print(f"{name}{suffix}: {re.sub(r'[0-9]{19}-[0-9a-f]{8}', '<id>', path)}")
            context.close()
        browser.close()


if __name__ == "__main__":
    main()
