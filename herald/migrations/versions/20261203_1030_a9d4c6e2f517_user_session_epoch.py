"""users.session_epoch: the access tokens of a user whose sessions were revoked stop working

Every access token carries its user's epoch (claim ``sev``); signing out everywhere,
deactivation, a role or password change increment it, so older tokens are refused at once.

Revision ID: a9d4c6e2f517
Revises: a7d3c9e1f254
Create Date: 2026-12-03 10:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a9d4c6e2f517"
down_revision: str | None = "a7d3c9e1f254"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("session_epoch", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("session_epoch")
