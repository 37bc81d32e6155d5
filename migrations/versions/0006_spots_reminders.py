"""spots, their checks and reminders: follow a spot over time (#13)

``reminders.chat`` is the chat id, Fernet-encrypted, kept only for users who asked for a
reminder and only until it is sent or stopped. ``status`` moves pending → claimed → sent (or
undeliverable / stopped) in transactions, so a reminder is sent once whatever the process does.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 09:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "spots",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_pseudonym", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("prompt_message_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_spots_user_pseudonym", "spots", ["user_pseudonym"])
    op.create_table(
        "spot_checks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("spot_id", sa.Integer(), sa.ForeignKey("spots.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("risk", sa.String(length=10), nullable=False),
        sa.Column("malignancy", sa.Float(), nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_spot_checks_spot_id", "spot_checks", ["spot_id"])
    op.create_table(
        "reminders",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("spot_id", sa.Integer(), sa.ForeignKey("spots.id", ondelete="CASCADE"), nullable=False),
        sa.Column("user_pseudonym", sa.String(length=64), nullable=False),
        sa.Column("chat", sa.Text(), nullable=True),
        sa.Column("language", sa.String(length=2), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_try_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("claimed_by", sa.String(length=32), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_reminders_user_pseudonym", "reminders", ["user_pseudonym"])
    op.create_index("ix_reminders_spot_id", "reminders", ["spot_id"])
    op.create_index("ix_reminders_queue", "reminders", ["status", "next_try_at"])


def downgrade() -> None:
    op.drop_table("reminders")
    op.drop_table("spot_checks")
    op.drop_table("spots")
