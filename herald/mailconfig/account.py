"""An org's mail account, ready to use: SMTP settings (password decrypted), default sender,
the relay's limits and the bounce address."""

from __future__ import annotations

from dataclasses import dataclass, field

from herald.mail.smtp import SmtpSettings

DEFAULT_MAX_CONNECTIONS = 10


@dataclass(frozen=True)
class RelayLimits:
    """What the org's relay takes, held by all of Herald's workers together; None: no limit."""

    per_second: int | None = None
    per_hour: int | None = None
    connections: int = DEFAULT_MAX_CONNECTIONS

    @property
    def rated(self) -> bool:
        return self.per_second is not None or self.per_hour is not None


@dataclass(frozen=True)
class MailAccount:
    smtp: SmtpSettings
    from_name: str
    from_email: str
    limits: RelayLimits = field(default_factory=RelayLimits)
    # the base of the VERP return path (herald.mail.sendref); None: the From address
    bounce_address: str | None = None
