"""Corrections: the answer the server gave for a drawing and what the person said about it.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "corrections",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("prediction_id", sa.String(64), nullable=False, unique=True),
        sa.Column("predicted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("corrected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(32), nullable=False),
        sa.Column("model_label", sa.String(64), nullable=False),
        sa.Column("digit", sa.SmallInteger, nullable=False),
        sa.Column("probabilities", sa.JSON, nullable=False),
        sa.Column("correction", sa.SmallInteger, nullable=True),
        sa.Column("png", sa.LargeBinary, nullable=True),
        sa.Column("normalized", sa.LargeBinary, nullable=False),
        sa.Column("challenger_version", sa.String(32), nullable=True),
        sa.Column("challenger_digit", sa.SmallInteger, nullable=True),
    )
    op.create_index("ix_corrections_model_version", "corrections", ["model_version"])


def downgrade() -> None:
    op.drop_index("ix_corrections_model_version", "corrections")
    op.drop_table("corrections")
