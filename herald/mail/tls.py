"""The TLS context Herald's mail clients (SMTP, IMAP) use towards an org's servers."""

from __future__ import annotations

import ssl


def client_context(verify: bool) -> ssl.SSLContext:
    """The system's trust store and hostname check; both off only when the operator turned
    verification off (HERALD_SMTP_VERIFY_TLS=false, for a private server's own certificate)."""
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
