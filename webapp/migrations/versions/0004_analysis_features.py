"""Each analysis keeps the classifier's pooled features of its lesion crop, so that a clinic's
own confirmed cases can be searched for similar lesions (skinlesion.similar).

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "analysis_features",
        sa.Column("analysis_id", sa.String(64), sa.ForeignKey("analyses.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("model_sha256", sa.String(64), nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=False))


def downgrade():
    op.drop_table("analysis_features")
