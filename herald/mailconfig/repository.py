"""Queries on the org's email configuration (one row per org)."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from herald.mailconfig.models import EmailConfig
from herald.tenancy import OrgRepository


class EmailConfigRepository(OrgRepository[EmailConfig]):
    model = EmailConfig
    noun = "email configuration"

    def current(self) -> EmailConfig | None:
        return self.session.scalars(self.select()).one_or_none()

    def current_or_new(self, defaults: EmailConfig) -> EmailConfig:
        """The org's row, or ``defaults`` inserted as it.

        Two first saves at once: the loser's insert hits the one-row-per-org constraint, is
        rolled back to its savepoint, and the winner's row is returned to be updated instead.
        """
        found = self.current()
        if found is not None:
            return found
        try:
            with self.session.begin_nested():
                return self.add(defaults)
        except IntegrityError:
            found = self.current()
            if found is None:
                raise
            return found
