"""inbox claims and update idempotency: several bot processes on one PostgreSQL

``inbox.owner``/``claimed_at``: which process answers an update, refreshed while it runs, so a
killed replica's updates are taken over by another. ``inbox.done_at``: answered updates stay
(without their payload) for a day, so the same update delivered again is not answered twice.
``submissions.update_id``: one logged case per Telegram update, whatever is retried.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 09:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbox") as batch:
        batch.add_column(sa.Column("owner", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("done_at", sa.DateTime(timezone=True), nullable=True))
        batch.alter_column("payload", existing_type=sa.JSON(), nullable=True)
        batch.create_index("ix_inbox_pending", ["done_at", "claimed_at"])
    with op.batch_alter_table("submissions") as batch:
        batch.add_column(sa.Column("update_id", sa.BigInteger(), nullable=True))
        batch.create_index("ix_submissions_update_id", ["update_id"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("submissions") as batch:
        batch.drop_index("ix_submissions_update_id")
        batch.drop_column("update_id")
    op.execute("DELETE FROM inbox WHERE done_at IS NOT NULL OR payload IS NULL")
    with op.batch_alter_table("inbox") as batch:
        batch.drop_index("ix_inbox_pending")
        batch.alter_column("payload", existing_type=sa.JSON(), nullable=False)
        batch.drop_column("done_at")
        batch.drop_column("claimed_at")
        batch.drop_column("owner")
