"""sends without an index on contact_id

Contact ids are random, so this index cost a launch as much as the token's (a random leaf
page per row): about a fifth of a PostgreSQL launch. Nothing looks sends up by contact: a
deleted contact's id stays on its sends, and the email log shows None for it.

Revision ID: c4a8e2b6d913
Revises: b7e3d1f9a024
Create Date: 2026-11-28 04:20:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "c4a8e2b6d913"
down_revision: str | None = "b7e3d1f9a024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_marketing_sends_contact_id", table_name="marketing_sends")


def downgrade() -> None:
    op.create_index("ix_marketing_sends_contact_id", "marketing_sends", ["contact_id"])
