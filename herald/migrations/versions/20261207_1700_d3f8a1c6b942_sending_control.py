"""sending control: scheduled, paused and cancelled campaigns, the relay's limits and budget

campaigns: when a SCHEDULED one launches, when and why one was PAUSED, its run of failures
that were not the recipients' (auto-pause), and its count of CANCELLED sends. email_configs:
the relay's limits. relay_budgets: one row per org, the permits the limits allow and the
backoff after a throttling answer; relay_connections: the connection slots each worker holds.

Revision ID: d3f8a1c6b942
Revises: d3f8a1c5e7b2
Create Date: 2026-12-07 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import herald.db

revision: str = "d3f8a1c6b942"
down_revision: str | None = "d3f8a1c5e7b2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "relay_budgets",
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("next_slot_at", herald.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("minute_counts", sa.JSON(), nullable=False),
        sa.Column("backoff_until", herald.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("backoff_seconds", sa.Float(), nullable=False),
        sa.Column("backoff_reason", sa.Text(), nullable=True),
        sa.Column("available_at", herald.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("per_second", sa.Integer(), nullable=True),
        sa.Column("per_hour", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.id"], name=op.f("fk_relay_budgets_org_id_orgs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_relay_budgets")),
    )
    op.create_table(
        "relay_connections",
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.Column("expires_at", herald.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["orgs.id"],
            name=op.f("fk_relay_connections_org_id_orgs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("org_id", "owner", name=op.f("pk_relay_connections")),
    )
    with op.batch_alter_table("campaigns") as batch:
        batch.add_column(sa.Column("cancelled", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(
            sa.Column("scheduled_at", herald.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch.add_column(
            sa.Column("paused_at", herald.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch.add_column(sa.Column("pause_reason", sa.Text(), nullable=True))
        batch.add_column(
            sa.Column("failure_streak", sa.Integer(), server_default="0", nullable=False)
        )
        batch.create_index("ix_campaigns_status_scheduled", ["status", "scheduled_at"])
    with op.batch_alter_table("email_configs") as batch:
        batch.add_column(sa.Column("max_per_second", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("max_per_hour", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("max_connections", sa.Integer(), server_default="10", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("email_configs") as batch:
        batch.drop_column("max_connections")
        batch.drop_column("max_per_hour")
        batch.drop_column("max_per_second")
    with op.batch_alter_table("campaigns") as batch:
        batch.drop_index("ix_campaigns_status_scheduled")
        batch.drop_column("failure_streak")
        batch.drop_column("pause_reason")
        batch.drop_column("paused_at")
        batch.drop_column("scheduled_at")
        batch.drop_column("cancelled")
    op.drop_table("relay_connections")
    op.drop_table("relay_budgets")
