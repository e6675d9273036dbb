"""sends without an org foreign key or index

A send is deleted with its campaign (campaigns.org_id cascades from the org), and every
query on sends names the campaign or the send's id, so marketing_sends.org_id needs neither
a foreign key nor an index. Both cost every row of a launch (a trigger check and an index
entry each) and, on PostgreSQL, every status change of every send. On SQLite dropping the
foreign key rebuilds the table (batch mode).

Revision ID: 8d41f0b6a2c3
Revises: 5e2a9c4d7b11
Create Date: 2026-11-28 00:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "8d41f0b6a2c3"
down_revision: str | None = "5e2a9c4d7b11"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("marketing_sends", schema=None) as batch_op:
        batch_op.drop_index("ix_marketing_sends_org_id")
        batch_op.drop_constraint("fk_marketing_sends_org_id_orgs", type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("marketing_sends", schema=None) as batch_op:
        batch_op.create_foreign_key(
            "fk_marketing_sends_org_id_orgs", "orgs", ["org_id"], ["id"], ondelete="CASCADE"
        )
        batch_op.create_index("ix_marketing_sends_org_id", ["org_id"], unique=False)
