"""sends without foreign keys to their campaign and contact

Each foreign key on marketing_sends costs every row of a launch a trigger (on PostgreSQL a
lookup that also locks the parent row: a 1,000,000-recipient launch locked each contact)
and, on PostgreSQL, every status change of every send. What they did is done explicitly:
only a DRAFT campaign can be deleted and a DRAFT has no sends; a deleted contact's id
stays on its sends and the email log shows None for it (the next revision drops its
index). On SQLite dropping a foreign key rebuilds the table (batch mode).

Revision ID: b7e3d1f9a024
Revises: 8d41f0b6a2c3
Create Date: 2026-11-28 04:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "b7e3d1f9a024"
down_revision: str | None = "8d41f0b6a2c3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("marketing_sends", schema=None) as batch_op:
        batch_op.drop_constraint("fk_marketing_sends_campaign_id_campaigns", type_="foreignkey")
        batch_op.drop_constraint("fk_marketing_sends_contact_id_contacts", type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("marketing_sends", schema=None) as batch_op:
        batch_op.create_foreign_key(
            "fk_marketing_sends_campaign_id_campaigns",
            "campaigns",
            ["campaign_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.create_foreign_key(
            "fk_marketing_sends_contact_id_contacts",
            "contacts",
            ["contact_id"],
            ["id"],
            ondelete="SET NULL",
        )
