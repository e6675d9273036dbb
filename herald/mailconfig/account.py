"""An org's mail account, ready to use: SMTP settings (password decrypted) and default sender."""

from __future__ import annotations

from dataclasses import dataclass

from herald.mail.smtp import SmtpSettings


@dataclass(frozen=True)
class MailAccount:
    smtp: SmtpSettings
    from_name: str
    from_email: str
    # the base of the VERP return path (herald.mail.sendref); None: the From address
    bounce_address: str | None = None
