"""Email configurations for tests: request bodies, and an org configured in the database."""

from __future__ import annotations

import uuid
from typing import Any

from herald.audit.service import CLI, system_actor
from herald.db import unit_of_work
from herald.mailconfig import service
from herald.mailconfig.schemas import EmailConfigIn
from herald.runtime import Runtime
from tests.smtp_server import SmtpServer

FROM_NAME = "Herald Tests"
FROM_EMAIL = "sender@example.com"


def config_body(server: SmtpServer | None = None, **overrides: Any) -> dict[str, Any]:
    """A valid PUT /api/settings/email body, aimed at ``server`` when given."""
    body: dict[str, Any] = {
        "host": server.host if server else "smtp.example.com",
        "port": server.port if server else 587,
        "username": "",
        "security": "none" if server else "starttls",
        "defaultFromName": FROM_NAME,
        "defaultFromEmail": FROM_EMAIL,
    }
    if server is not None and server.credentials is not None:
        body["username"], body["password"] = server.credentials
    body.update(overrides)
    return body


def configure_smtp(
    runtime: Runtime, org_id: uuid.UUID, server: SmtpServer, **overrides: Any
) -> None:
    """Point the org's email configuration at ``server`` without going through HTTP."""
    data = EmailConfigIn.model_validate(config_body(server, **overrides))
    with unit_of_work(runtime.sessions) as session:
        service.save_config(
            session, runtime.settings, org_id, data, actor=system_actor(org_id, CLI)
        )
