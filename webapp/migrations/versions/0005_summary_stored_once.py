"""An analysis' summary is stored once, as its JSON: the columns that copied parts of it
(task, prediction, probabilities, malignant_probability, suspicious, low_confidence, lesion,
models) were never queried. Rows from before the whole summary was kept get those parts
folded into it first, so that nothing is lost.

Revision ID: 0005
Revises: 0004
"""
import json

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

FOLDED = ("task", "prediction", "probabilities", "malignant_probability", "suspicious", "low_confidence",
          "lesion", "models")
JSON_FOLDED = ("probabilities", "lesion", "models")
CHUNK = 500  # rows read and rewritten at a time


def _analyses(*names):
    return sa.table("analyses", sa.column("id"), sa.column("summary"), *(sa.column(name) for name in names))


def _folded(row):
    """The row's copied columns as the summary holds them."""
    parts = {name: json.loads(row[name]) if name in JSON_FOLDED else row[name] for name in FOLDED}
    parts["suspicious"], parts["low_confidence"] = bool(parts["suspicious"]), bool(parts["low_confidence"])
    return parts


def upgrade():
    bind, analyses, last = op.get_bind(), _analyses(*FOLDED), ""
    while True:
        rows = bind.execute(sa.select(analyses).where(analyses.c.id > last)
                            .order_by(analyses.c.id).limit(CHUNK)).mappings().all()
        if not rows:
            break
        for row in rows:
            summary = json.loads(row["summary"] or "{}")
            whole = _folded(row) | summary  # what the summary says wins, as the store read it
            if whole != summary:
                bind.execute(analyses.update().where(analyses.c.id == row["id"]).values(summary=json.dumps(whole)))
        last = rows[-1]["id"]
    with op.batch_alter_table("analyses") as table:
        for name in FOLDED:
            table.drop_column(name)


def downgrade():
    with op.batch_alter_table("analyses") as table:
        table.add_column(sa.Column("task", sa.String(32), nullable=False, server_default=""))
        table.add_column(sa.Column("prediction", sa.String(32), nullable=False, server_default=""))
        table.add_column(sa.Column("probabilities", sa.Text, nullable=False, server_default="{}"))
        table.add_column(sa.Column("malignant_probability", sa.Float, nullable=False, server_default="0"))
        table.add_column(sa.Column("suspicious", sa.Integer, nullable=False, server_default="0"))
        table.add_column(sa.Column("low_confidence", sa.Integer, nullable=False, server_default="0"))
        table.add_column(sa.Column("lesion", sa.Text, nullable=False, server_default="{}"))
        table.add_column(sa.Column("models", sa.Text, nullable=False, server_default="{}"))
    bind, analyses = op.get_bind(), _analyses(*FOLDED)
    for row in bind.execute(sa.select(analyses.c.id, analyses.c.summary)).mappings().all():
        summary = json.loads(row["summary"])
        values = {name: json.dumps(summary.get(name, {})) if name in JSON_FOLDED else summary.get(name)
                  for name in FOLDED}
        values["suspicious"], values["low_confidence"] = int(bool(values["suspicious"])), int(bool(values["low_confidence"]))
        bind.execute(analyses.update().where(analyses.c.id == row["id"]).values(**values))
