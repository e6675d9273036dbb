"""delivered sends found by the org and the address they went to, not by their contact: a
bounce for a contact's old address, or a deleted contact's, still finds its send

Revision ID: c4e8a1f9b372
Revises: f3b8d2a6c915
Create Date: 2026-12-07 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c4e8a1f9b372"
down_revision: str | None = "f3b8d2a6c915"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DELIVERED = sa.text("status IN ('DELIVERED', 'BOUNCED')")


def upgrade() -> None:
    with op.batch_alter_table("marketing_sends", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_marketing_sends_contact_delivered",
            postgresql_where=_DELIVERED,
            sqlite_where=_DELIVERED,
        )
    op.create_index(
        "ix_marketing_sends_address_delivered",
        "marketing_sends",
        ["org_id", sa.text("lower(email)"), "id"],
        unique=False,
        postgresql_where=_DELIVERED,
        sqlite_where=_DELIVERED,
    )


def downgrade() -> None:
    op.drop_index("ix_marketing_sends_address_delivered", table_name="marketing_sends")
    with op.batch_alter_table("marketing_sends", schema=None) as batch_op:
        batch_op.create_index(
            "ix_marketing_sends_contact_delivered",
            ["contact_id", "id"],
            unique=False,
            postgresql_where=_DELIVERED,
            sqlite_where=_DELIVERED,
        )
