"""The demo org of ``herald dev``: created once, found again on every later run.

An org with the ``marketing`` licence, an ADMIN and a MANAGER sharing a password generated on
the first run (kept beside the inbox, so later runs can print it again), about 200 varied
contacts (three of whose addresses bounce or complain), an email configuration pointing at
the local mail catcher with a bounce address, and a draft campaign."""

from __future__ import annotations

import dataclasses
import json
import random
import secrets
import unicodedata
import uuid
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from herald.audit import service as audit
from herald.auth.passwords import hash_password
from herald.crm.models import DEFAULT_STATUSES, Contact
from herald.crm.schemas import ContactCreateIn
from herald.crm.service import create_contact
from herald.mailconfig.schemas import EmailConfigIn
from herald.mailconfig.service import get_config, save_config
from herald.marketing import service as campaigns
from herald.marketing.schemas import AudienceIn, CampaignIn
from herald.orgs.models import Org, User
from herald.orgs.service import create_org, create_user
from herald.settings import Settings

ORG_NAME = "Demo Company"
ADMIN_EMAIL = "admin@demo.herald.example"
MANAGER_EMAIL = "manager@demo.herald.example"
CONTACT_COUNT = 200
SEED = 2026

FIRST_NAMES = [
    "Ana", "José", "Zoë", "Åsa", "Łukasz", "François", "Mīrā", "Ørjan", "Chloé", "Dmitri",
    "Siobhán", "Björn", "Nguyễn", "Aiyana", "Kwame", "Fatima", "Hiroshi", "Ines", "Oliver", "Priya",
    "Renée", "Søren", "Tomás", "Yara", "Zeynep", "Émile", "Grace", "Mateo", "Nadia", "Sam",
]  # fmt: skip
LAST_NAMES = [
    "García", "Müller", "O'Brien", "Dubois", "Kowalski", "Johansson", "Nakamura", "Okafor",
    "Rossi", "Smith", "Novák", "Østergaard", "Papadopoulos", "Silva", "Yılmaz", "Van der Berg",  # noqa: RUF001
    "Ångström", "Ivanova", "Chen", "Haddad",
]  # fmt: skip
COMPANIES = [
    "Northwind Traders", "Contoso Ltd", "Fabrikam & Söhne", "Globex", "Initech", "Umbrella Co",
    "Café Crème SARL", "Øresund Logistics", "Sakura Design 桜", "Acme Corp", "",
]  # fmt: skip
DOMAINS = ["example.com", "example.org", "example.net"]
BOUNCE_ADDRESS = "bounces@demo.herald.example"
# Demo contacts whose mail the local catcher answers with a report through Herald's own
# bounce receiver (herald.dev.catcher): a hard bounce, a soft one and a spam complaint.
BOUNCING = {
    "gone.user@demo-recipient.herald.example": "hard",
    "full.mailbox@demo-recipient.herald.example": "soft",
    "says.spam@demo-recipient.herald.example": "complaint",
}

WELCOME_HTML = """<h1>Hello {{firstName|there}}!</h1>
<p>This is the demo campaign of <strong>Herald</strong>, sent to the contacts of
{{companyName|your company}}.</p>
<p>Every message is personalised: this one was made for {{email}}.</p>
<p>Open it in the Inbox to count an open, follow
<a href="https://example.com/?from=herald-demo&amp;who={{email}}">this tracked link</a> to count
a click (Herald sends you on to the page), then follow the unsubscribe link below.</p>
"""
WELCOME_TEXT = """Hello {{firstName|there}}!

This is the demo campaign of Herald, made for {{email}}.
"""


@dataclasses.dataclass(frozen=True)
class DemoLogin:
    org_id: uuid.UUID
    admin_email: str
    manager_email: str
    password: str
    created: bool


def ascii_part(value: str) -> str:
    """A mailbox-friendly form of a name: its ASCII letters, accents dropped."""
    folded = unicodedata.normalize("NFKD", value.lower())
    return "".join(ch for ch in folded if "a" <= ch <= "z") or "contact"


def demo_contacts(count: int = CONTACT_COUNT) -> list[ContactCreateIn]:
    """The same varied contacts every time: every status, some opted out, a few without an
    address, names from many languages."""
    rng = random.Random(SEED)  # noqa: S311 (sample data, not secrets)
    rows = []
    for n in range(count):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        email = f"{ascii_part(first)}.{ascii_part(last)}{n}@{rng.choice(DOMAINS)}"
        rows.append(
            ContactCreateIn(
                email=None if n % 37 == 36 else email,
                first_name="" if n % 23 == 22 else first,
                last_name=last,
                company_name=rng.choice(COMPANIES),
                status=DEFAULT_STATUSES[n % len(DEFAULT_STATUSES)],
                marketing_opt_out=n % 11 == 10,
            )
        )
    return rows


def _login_file(dev_dir: Path) -> Path:
    return dev_dir / "demo-login.json"


def _find_org(session: Session) -> Org | None:
    admin = session.scalars(select(User).where(User.email == ADMIN_EMAIL)).first()
    return session.get(Org, admin.org_id) if admin else None


def _stored_password(dev_dir: Path, org_id: uuid.UUID) -> str | None:
    try:
        stored = json.loads(_login_file(dev_dir).read_text())
    except (OSError, ValueError):
        return None
    if stored.get("orgId") != str(org_id) or not isinstance(stored.get("password"), str):
        return None
    return str(stored["password"])


def _remember(dev_dir: Path, org_id: uuid.UUID, password: str) -> None:
    dev_dir.mkdir(parents=True, exist_ok=True)
    path = _login_file(dev_dir)
    path.write_text(json.dumps({"orgId": str(org_id), "password": password}))
    path.chmod(0o600)


def bouncing_contacts() -> list[ContactCreateIn]:
    names = {"hard": ("Gone", "User"), "soft": ("Full", "Mailbox"), "complaint": ("Says", "Spam")}
    return [
        ContactCreateIn(
            email=email, first_name=names[kind][0], last_name=names[kind][1], status="LEAD"
        )
        for email, kind in BOUNCING.items()
    ]


def _add_bouncing_contacts(session: Session, org_id: uuid.UUID) -> None:
    """On the demo org of an earlier Herald too: the contacts whose mail bounces."""
    known = set(
        session.scalars(
            select(Contact.email_key).where(
                Contact.org_id == org_id, Contact.email_key.in_(list(BOUNCING))
            )
        )
    )
    for contact in bouncing_contacts():
        if contact.email not in known:
            create_contact(session, org_id, contact)


def _point_at_catcher(session: Session, settings: Settings, org_id: uuid.UUID, port: int) -> None:
    config = get_config(session, org_id)
    if config is not None and (config.host, config.port, config.bounce_address) == (
        "127.0.0.1",
        port,
        BOUNCE_ADDRESS,
    ):
        return
    save_config(
        session,
        settings,
        org_id,
        EmailConfigIn(
            host="127.0.0.1",
            port=port,
            security="none",
            default_from_name=ORG_NAME,
            default_from_email="news@demo.herald.example",
            bounce_address=BOUNCE_ADDRESS,
        ),
        actor=audit.system_actor(org_id, audit.DEV),
    )


def _create(session: Session, password: str) -> Org:
    org = create_org(session, ORG_NAME, ["marketing"])
    actor = audit.system_actor(org.id, audit.DEV)
    create_user(session, org, ADMIN_EMAIL, password, "ADMIN", actor=actor)
    create_user(session, org, MANAGER_EMAIL, password, "MANAGER", actor=actor)
    for contact in demo_contacts():
        create_contact(session, org.id, contact)
    campaigns.create_campaign(
        session,
        org.id,
        CampaignIn(
            name="Welcome to Herald",
            subject="Welcome, {{firstName|friend}}!",
            html_body=WELCOME_HTML,
            text_body=WELCOME_TEXT,
            audience=AudienceIn(type="ALL"),
        ),
    )
    campaigns.create_campaign(
        session,
        org.id,
        CampaignIn(
            name="Customers only: autumn news",
            subject="Autumn news for {{companyName|you}}",
            html_body="<p>Dear {{firstName|customer}}, thank you for being with us.</p>",
            audience=AudienceIn(type="STATUS", statuses=["CUSTOMER"]),
        ),
    )
    return org


def ensure_demo(session: Session, settings: Settings, dev_dir: Path, smtp_port: int) -> DemoLogin:
    """The demo org, created on the first run; later runs find it (by its admin) and only
    re-point its email configuration at this run's catcher port."""
    org = _find_org(session)
    created = org is None
    if org is None:
        password = secrets.token_urlsafe(12)
        org = _create(session, password)
    else:
        stored = _stored_password(dev_dir, org.id)
        password = stored or secrets.token_urlsafe(12)
        if stored is None:  # the file was lost: give both demo users a new password
            for user in session.scalars(select(User).where(User.org_id == org.id)):
                if user.email in (ADMIN_EMAIL, MANAGER_EMAIL):
                    user.password_hash = hash_password(password)
    _add_bouncing_contacts(session, org.id)
    _point_at_catcher(session, settings, org.id, smtp_port)
    session.flush()
    _remember(dev_dir, org.id, password)
    return DemoLogin(org.id, ADMIN_EMAIL, MANAGER_EMAIL, password, created)
