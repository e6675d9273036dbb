"""mail services' webhook keys and the bounce mailbox in email_configs; the mailbox's poll
lease and status in bounce_mailbox_polls; webhook calls waiting to be ingested, and the
Mailgun tokens already accepted (issue #15)

Revision ID: f3b8d2a6c915
Revises: adb70d16daf1
Create Date: 2026-12-07 12:00:00
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import herald.db

revision: str = "f3b8d2a6c915"
down_revision: str | None = "adb70d16daf1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (
    sa.Column("webhook_key", sa.String(length=64), nullable=True),
    sa.Column("sendgrid_verification_key", sa.Text(), nullable=False, server_default=""),
    sa.Column("mailgun_signing_key_sealed", sa.Text(), nullable=True),
    sa.Column("postmark_password_sealed", sa.Text(), nullable=True),
    sa.Column("bounce_mailbox_host", sa.String(length=255), nullable=False, server_default=""),
    sa.Column("bounce_mailbox_port", sa.Integer(), nullable=False, server_default="993"),
    sa.Column("bounce_mailbox_username", sa.String(length=255), nullable=False, server_default=""),
    sa.Column("bounce_mailbox_password_sealed", sa.Text(), nullable=True),
    sa.Column(
        "bounce_mailbox_security", sa.String(length=16), nullable=False, server_default="tls"
    ),
    sa.Column(
        "bounce_mailbox_folder", sa.String(length=255), nullable=False, server_default="INBOX"
    ),
)


def upgrade() -> None:
    for column in _COLUMNS:
        op.add_column("email_configs", column)
    # every existing configuration gets its own key (the model's default does it for new ones)
    configs = sa.table("email_configs", sa.column("id", sa.Uuid()), sa.column("webhook_key"))
    connection = op.get_bind()
    for (config_id,) in connection.execute(sa.select(configs.c.id)).all():
        connection.execute(
            configs.update()
            .where(configs.c.id == config_id)
            .values(webhook_key=secrets.token_urlsafe(32))
        )
    op.create_index("ix_email_configs_webhook_key", "email_configs", ["webhook_key"], unique=True)
    op.create_table(
        "bounce_mailbox_polls",
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("next_poll_at", herald.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_expires_at", herald.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("polled_at", herald.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("uid_validity", sa.BigInteger(), nullable=True),
        sa.Column("last_uid", sa.BigInteger(), nullable=False),
        sa.Column("processed_last", sa.Integer(), nullable=False),
        sa.Column("processed_total", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["orgs.id"],
            name=op.f("fk_bounce_mailbox_polls_org_id_orgs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_bounce_mailbox_polls")),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("received_at", herald.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("failed_at", herald.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["orgs.id"],
            name=op.f("fk_webhook_deliveries_org_id_orgs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    )
    op.create_table(
        "mailgun_tokens",
        sa.Column("token", sa.String(length=256), nullable=False),
        sa.Column("signed_at", herald.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token", name=op.f("pk_mailgun_tokens")),
    )
    op.create_index(
        op.f("ix_mailgun_tokens_signed_at"), "mailgun_tokens", ["signed_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_mailgun_tokens_signed_at"), table_name="mailgun_tokens")
    op.drop_table("mailgun_tokens")
    op.drop_table("webhook_deliveries")
    op.drop_table("bounce_mailbox_polls")
    op.drop_index("ix_email_configs_webhook_key", table_name="email_configs")
    with op.batch_alter_table("email_configs") as batch:
        for column in reversed(_COLUMNS):
            batch.drop_column(column.name)
