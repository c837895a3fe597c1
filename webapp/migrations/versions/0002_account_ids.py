"""Accounts get an id and a session version (users of the first release have neither).

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    present = {column["name"] for column in sa.inspect(op.get_bind()).get_columns("users")}
    with op.batch_alter_table("users") as table:
        if "id" not in present:
            table.add_column(sa.Column("id", sa.String(80)))
        if "session_version" not in present:
            table.add_column(sa.Column("session_version", sa.Integer, nullable=False, server_default="0"))


def downgrade():
    with op.batch_alter_table("users") as table:
        table.drop_column("session_version")
        table.drop_column("id")
