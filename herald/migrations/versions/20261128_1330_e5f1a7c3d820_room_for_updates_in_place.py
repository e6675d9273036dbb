"""room on each page for updates in place (PostgreSQL fillfactor)

PostgreSQL writes an updated row as a new version. When the page has room and no indexed
column changed, the new version stays on the page and no index is touched (a HOT update);
otherwise every index of the table gets an entry. A launch fills the sends' pages to the
brim, so an open or an unsubscribe, which change no indexed column, still paid for five
index entries; so did a contact's opt-out. Sends are updated several times each (in flight,
outcome, open, unsubscribe): 80 % fill; contacts less often: 90 %. Pages written from now
on keep the room (existing ones when rewritten). SQLite updates in place: nothing to do.

Revision ID: e5f1a7c3d820
Revises: c4a8e2b6d913
Create Date: 2026-11-28 13:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "e5f1a7c3d820"
down_revision: str | None = "c4a8e2b6d913"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FILL = {"marketing_sends": 80, "contacts": 90}


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, percent in FILL.items():
            op.execute(f"ALTER TABLE {table} SET (fillfactor = {percent})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in FILL:
            op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
