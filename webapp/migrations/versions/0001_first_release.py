"""The tables of the first releases: analyses, batches, accounts, login throttling, work counts.

Databases made before Alembic have some of these already (the first release had no batches
table), so each is created only where it is missing.

Revision ID: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    present = set(sa.inspect(op.get_bind()).get_table_names())
    if "analyses" not in present:
        op.create_table(
            "analyses",
            sa.Column("id", sa.String(64), primary_key=True),
            sa.Column("created", sa.String(40), nullable=False),
            sa.Column("task", sa.String(32), nullable=False),
            sa.Column("prediction", sa.String(32), nullable=False),
            sa.Column("probabilities", sa.Text, nullable=False),
            sa.Column("malignant_probability", sa.Float, nullable=False),
            sa.Column("suspicious", sa.Integer, nullable=False),
            sa.Column("low_confidence", sa.Integer, nullable=False),
            sa.Column("lesion", sa.Text, nullable=False),
            sa.Column("models", sa.Text, nullable=False),
            sa.Column("files", sa.Text, nullable=False),
            sa.Column("summary", sa.Text, nullable=False),
            sa.Column("original_name", sa.Text),
            sa.Column("image_sha256", sa.String(64)),
            sa.Column("case_ref", sa.Text),
            sa.Column("note", sa.Text),
            sa.Column("owner", sa.String(80)))
    indexes = {index["name"] for index in sa.inspect(op.get_bind()).get_indexes("analyses")}
    if "analyses_created" not in indexes:
        op.create_index("analyses_created", "analyses", ["created"])
    if "analyses_case" not in indexes:
        op.create_index("analyses_case", "analyses", ["case_ref"])
    if "batches" not in present:
        op.create_table(
            "batches",
            sa.Column("id", sa.String(64), primary_key=True),
            sa.Column("created", sa.String(40), nullable=False),
            sa.Column("owner", sa.String(80)),
            sa.Column("analyses", sa.Text, nullable=False),
            sa.Column("failures", sa.Text, nullable=False))
    if "users" not in present:
        op.create_table(
            "users",
            sa.Column("name", sa.String(64), primary_key=True),
            sa.Column("password_hash", sa.Text, nullable=False),
            sa.Column("created", sa.String(40), nullable=False))
    if "login_throttle" not in present:
        op.create_table(
            "login_throttle",
            sa.Column("key", sa.String(400), primary_key=True),
            sa.Column("failures", sa.Integer, nullable=False),
            sa.Column("last", sa.Float, nullable=False))
    if "work_counts" not in present:
        op.create_table(
            "work_counts",
            sa.Column("key", sa.String(120), primary_key=True),
            sa.Column("count", sa.Integer, nullable=False),
            sa.Column("window_start", sa.Float, nullable=False))


def downgrade():
    raise NotImplementedError("the first schema has nothing older to go back to")
