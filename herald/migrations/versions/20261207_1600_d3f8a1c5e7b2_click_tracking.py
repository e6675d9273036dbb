"""click tracking and honest engagement: tracked links, their hits, human and machine figures

Campaigns get trackOpens / trackClicks and the engagement counters; sends their engagement
columns; two tables: a launched campaign's links and the hits on them. Existing figures keep
their meaning: every open counted so far counts as human (nothing was classified before),
and the unsubscribes counter starts from the sends already unsubscribed. Campaigns launched
before this revision sent their links as written, so they say trackClicks false.

Plain ADD COLUMN, not a batch (SQLite would copy a table of millions of sends for it).

Revision ID: d3f8a1c5e7b2
Revises: c4e8a1f9b372
Create Date: 2026-12-07 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import herald.db

revision: str = "d3f8a1c5e7b2"
down_revision: str | None = "c4e8a1f9b372"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CAMPAIGN_COUNTERS = ("human_opens", "machine_opens", "clicks", "machine_clicks", "unsubscribes")
SEND_TIMES = ("open_human_at", "clicked_at", "click_human_at", "trapped_at")


def _big_id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    for flag in ("track_opens", "track_clicks"):
        op.add_column(
            "campaigns", sa.Column(flag, sa.Boolean(), nullable=False, server_default=sa.true())
        )
    for counter in CAMPAIGN_COUNTERS:
        op.add_column(
            "campaigns", sa.Column(counter, sa.Integer(), nullable=False, server_default="0")
        )
    for column in SEND_TIMES:
        op.add_column("marketing_sends", sa.Column(column, herald.db.UTCDateTime(timezone=True)))
    op.add_column("marketing_sends", sa.Column("machine_reason", sa.String(length=32)))
    op.add_column("marketing_sends", sa.Column("human_link_hits", sa.JSON()))

    op.create_table(
        "marketing_links",
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("clicks", sa.Integer(), nullable=False),
        sa.Column("unique_clicks", sa.Integer(), nullable=False),
        sa.Column("machine_clicks", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_marketing_links_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", "n", name=op.f("pk_marketing_links")),
    )
    op.create_table(
        "marketing_clicks",
        sa.Column("id", _big_id(), autoincrement=True, nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("send_id", _big_id(), nullable=False),
        sa.Column("link", sa.Integer(), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("machine", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_marketing_clicks")),
    )
    op.create_index(
        "ix_marketing_clicks_send", "marketing_clicks", ["send_id", "machine", "link", "at"]
    )

    op.execute("UPDATE marketing_sends SET open_human_at = opened_at WHERE opened_at IS NOT NULL")
    op.execute("UPDATE campaigns SET human_opens = opens")
    op.execute(
        "UPDATE campaigns SET unsubscribes = (SELECT count(*) FROM marketing_sends s "
        "WHERE s.campaign_id = campaigns.id AND s.unsubscribed_at IS NOT NULL)"
    )
    op.execute(
        sa.text("UPDATE campaigns SET track_clicks = :no WHERE status <> 'DRAFT'").bindparams(
            no=False
        )
    )


def downgrade() -> None:
    op.drop_index("ix_marketing_clicks_send", table_name="marketing_clicks")
    op.drop_table("marketing_clicks")
    op.drop_table("marketing_links")
    with op.batch_alter_table("marketing_sends") as batch:
        for column in (*SEND_TIMES, "machine_reason", "human_link_hits"):
            batch.drop_column(column)
    with op.batch_alter_table("campaigns") as batch:
        for column in ("track_opens", "track_clicks", *CAMPAIGN_COUNTERS):
            batch.drop_column(column)
