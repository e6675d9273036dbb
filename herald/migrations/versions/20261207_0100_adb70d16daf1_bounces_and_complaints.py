"""bounces and complaints: the reports as received and per recipient, the sends' bounce
columns, the campaigns' counters, the contacts' email status, the bounce address

The partial index of delivered sends by contact is empty after a launch (every send is
QUEUED then) and grows as sends are delivered, so it costs a launch nothing.

Revision ID: adb70d16daf1
Revises: a9d4c6e2f517
Create Date: 2026-12-07 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import herald.db

revision: str = "adb70d16daf1"
down_revision: str | None = "a9d4c6e2f517"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bounce_raw_reports",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("received_at", herald.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("envelope_to", sa.String(length=320), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["orgs.id"],
            name=op.f("fk_bounce_raw_reports_org_id_orgs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bounce_raw_reports")),
        sa.UniqueConstraint("org_id", "sha256", name="uq_bounce_raw_reports_sha256"),
    )
    op.create_table(
        "bounce_reports",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("raw_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("received_at", herald.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("send_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("campaign_id", sa.Uuid(), nullable=True),
        sa.Column("contact_id", sa.Uuid(), nullable=True),
        sa.Column("matched_by", sa.String(length=16), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status_code", sa.String(length=16), nullable=True),
        sa.Column("original_message_id", sa.String(length=998), nullable=True),
        sa.Column("event_key", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.id"], name=op.f("fk_bounce_reports_org_id_orgs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["raw_id"],
            ["bounce_raw_reports.id"],
            name=op.f("fk_bounce_reports_raw_id_bounce_raw_reports"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bounce_reports")),
    )
    with op.batch_alter_table("bounce_reports", schema=None) as batch_op:
        batch_op.create_index(
            "ix_bounce_reports_org_received", ["org_id", "received_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_bounce_reports_org_type_received",
            ["org_id", "type", "received_at", "id"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_bounce_reports_raw_id"), ["raw_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_bounce_reports_send_id"), ["send_id"], unique=False)
        batch_op.create_index(
            "uq_bounce_reports_event_key",
            ["org_id", "event_key"],
            unique=True,
            postgresql_where=sa.text("event_key IS NOT NULL"),
            sqlite_where=sa.text("event_key IS NOT NULL"),
        )

    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bounced", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(
            sa.Column("complaints", sa.Integer(), server_default="0", nullable=False)
        )

    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("email_status", sa.String(length=16), server_default="OK", nullable=False)
        )
        batch_op.add_column(sa.Column("email_status_reason", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("email_status_at", herald.db.UTCDateTime(timezone=True), nullable=True)
        )

    with op.batch_alter_table("email_configs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bounce_address", sa.String(length=320), nullable=True))
        batch_op.add_column(
            sa.Column("soft_bounce_limit", sa.Integer(), server_default="3", nullable=False)
        )
        batch_op.create_index("uq_email_configs_bounce_address", ["bounce_address"], unique=True)

    with op.batch_alter_table("marketing_sends", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bounce_type", sa.String(length=8), nullable=True))
        batch_op.add_column(
            sa.Column("bounced_at", herald.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("complained_at", herald.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index(
            "ix_marketing_sends_contact_delivered",
            ["contact_id", "id"],
            unique=False,
            postgresql_where=sa.text("status IN ('DELIVERED', 'BOUNCED')"),
            sqlite_where=sa.text("status IN ('DELIVERED', 'BOUNCED')"),
        )


def downgrade() -> None:
    with op.batch_alter_table("marketing_sends", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_marketing_sends_contact_delivered",
            postgresql_where=sa.text("status IN ('DELIVERED', 'BOUNCED')"),
            sqlite_where=sa.text("status IN ('DELIVERED', 'BOUNCED')"),
        )
        batch_op.drop_column("complained_at")
        batch_op.drop_column("bounced_at")
        batch_op.drop_column("bounce_type")

    with op.batch_alter_table("email_configs", schema=None) as batch_op:
        batch_op.drop_index("uq_email_configs_bounce_address")
        batch_op.drop_column("soft_bounce_limit")
        batch_op.drop_column("bounce_address")

    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_column("email_status_at")
        batch_op.drop_column("email_status_reason")
        batch_op.drop_column("email_status")

    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("complaints")
        batch_op.drop_column("bounced")

    with op.batch_alter_table("bounce_reports", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_bounce_reports_event_key",
            postgresql_where=sa.text("event_key IS NOT NULL"),
            sqlite_where=sa.text("event_key IS NOT NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_bounce_reports_send_id"))
        batch_op.drop_index(batch_op.f("ix_bounce_reports_raw_id"))
        batch_op.drop_index("ix_bounce_reports_org_type_received")
        batch_op.drop_index("ix_bounce_reports_org_received")

    op.drop_table("bounce_reports")
    op.drop_table("bounce_raw_reports")
