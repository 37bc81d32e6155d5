"""waiting_answers: a result waiting for the questions asked before it (#20)

``sealed`` holds, Fernet-encrypted like reminders' chat ids, what answering needs (chat,
message, the image result); the row is deleted once the result is sent, and by /delete.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 21:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "waiting_answers",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_pseudonym", sa.String(length=64), nullable=False),
        sa.Column("update_id", sa.BigInteger(), nullable=True),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("language", sa.String(length=2), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("owner", sa.String(length=32), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_waiting_answers_user_pseudonym", "waiting_answers", ["user_pseudonym"])
    op.create_index("ix_waiting_answers_update_id", "waiting_answers", ["update_id"])
    op.create_index("ix_waiting_answers_due_at", "waiting_answers", ["due_at"])


def downgrade() -> None:
    op.drop_table("waiting_answers")
