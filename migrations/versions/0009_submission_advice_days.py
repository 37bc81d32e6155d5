"""submissions.advice_days: the deadline of the final advice a photo's user was given

"14" (see a doctor within 2 weeks), "30" (within a month) or "watch" (keep watching, photograph
again); written when the result is sent and again when a later answer raises it, so clinicians
can audit what people were told (``python -m bot.admin export``'s ``advice_days`` column, the
same value as the ``bot_advice_total`` metric's label).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 02:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("submissions") as batch:
        batch.add_column(sa.Column("advice_days", sa.String(8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("submissions") as batch:
        batch.drop_column("advice_days")
