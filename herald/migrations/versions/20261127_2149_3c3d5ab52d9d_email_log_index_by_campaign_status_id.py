"""email log index by campaign, status, id

The email log's pages by status walk (campaign_id, status, id) alone. SQLite indexes already
end with the rowid; PostgreSQL's needs id to keep a status's sends in id order. The index is
rebuilt: on a large table, writes to marketing_sends wait while it builds.

Revision ID: 3c3d5ab52d9d
Revises: c1b17b71e3b0
Create Date: 2026-11-27 21:49:53.694586
"""

from collections.abc import Sequence

from alembic import op

revision: str = "3c3d5ab52d9d"
down_revision: str | None = "c1b17b71e3b0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_marketing_sends_campaign_status", table_name="marketing_sends")
    op.create_index(
        "ix_marketing_sends_campaign_status",
        "marketing_sends",
        ["campaign_id", "status", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_marketing_sends_campaign_status", table_name="marketing_sends")
    op.create_index(
        "ix_marketing_sends_campaign_status",
        "marketing_sends",
        ["campaign_id", "status"],
        unique=False,
    )
