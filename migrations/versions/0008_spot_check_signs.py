"""spot_checks.signs: a warning sign ticked for a check keeps the spot at "see a doctor"

A spot created from a result after which a sign was ticked, or whose comparison's questions got a
sign, is advised at least "see a doctor within the signs interval" from that check on
(``bot.medical.advice.follow``); before, its reminders and later comparisons fell back to the photo's
level (a low spot: "photograph it again") after the user had been told to see a doctor.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 21:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("spot_checks") as batch:
        batch.add_column(sa.Column("signs", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("spot_checks") as batch:
        batch.drop_column("signs")
