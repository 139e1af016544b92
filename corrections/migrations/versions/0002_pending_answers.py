"""Pending answers: what the server answered, kept until the correction window ends.

Written at predict time so that any web UI replica can take any correction.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pending_answers",
        sa.Column("prediction_id", sa.String(64), primary_key=True),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("predicted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(32), nullable=False),
        sa.Column("model_label", sa.String(64), nullable=False),
        sa.Column("digit", sa.SmallInteger, nullable=False),
        sa.Column("probabilities", sa.JSON, nullable=False),
        sa.Column("png", sa.LargeBinary, nullable=True),
        sa.Column("normalized", sa.LargeBinary, nullable=False),
        sa.Column("challenger_version", sa.String(32), nullable=True),
        sa.Column("challenger_digit", sa.SmallInteger, nullable=True),
    )
    op.create_index("ix_pending_answers_expires_at", "pending_answers", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_pending_answers_expires_at", "pending_answers")
    op.drop_table("pending_answers")
