"""Contacts for tests, committed, and logged-in CRM users of a fresh org."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import httpx

from herald.crm.models import Contact
from herald.db import unit_of_work, utcnow
from herald.runtime import Runtime
from tests.orgs.factories import login, make_org, make_user


@dataclass
class CrmCaller:
    org_id: uuid.UUID
    headers: dict[str, str]


def crm_caller(
    client: httpx.Client, runtime: Runtime, role: str = "ADMIN", org_id: uuid.UUID | None = None
) -> CrmCaller:
    """A user of ``role`` in ``org_id`` (a fresh org by default), logged in."""
    org_id = org_id or make_org(runtime).id
    return CrmCaller(org_id, login(client, make_user(runtime, org_id, role)))


def make_contact(
    runtime: Runtime,
    org_id: uuid.UUID,
    email: str | None = None,
    *,
    first_name: str = "Ada",
    last_name: str = "Lovelace",
    company_name: str = "",
    status: str = "LEAD",
    marketing_opt_out: bool = False,
    created_at: dt.datetime | None = None,
) -> Contact:
    with unit_of_work(runtime.sessions) as session:
        contact = Contact(
            org_id=org_id,
            email=email,
            email_key=email.lower() if email else None,
            first_name=first_name,
            last_name=last_name,
            company_name=company_name,
            status=status,
            marketing_opt_out=marketing_opt_out,
            created_at=created_at or utcnow(),
        )
        session.add(contact)
    return contact


def unique_email(prefix: str = "contact") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"
