"""Patients, their lesions (with a body site), confirmed diagnoses; an analysis is a visit of a lesion.

Each free-text case reference of the analyses before becomes a patient of that identifier
(per owner) with one lesion, its site not yet known, whose visits are those analyses; the
case reference itself stays on each analysis.

Revision ID: 0003
Revises: 0002
"""
import uuid
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "patients",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("identifier", sa.String(100), nullable=False),
        sa.Column("owner", sa.String(80)),
        sa.Column("created", sa.String(40), nullable=False))
    op.create_index("patients_identifier", "patients", ["identifier"])
    op.create_table(
        "lesions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("patient_id", sa.String(64), sa.ForeignKey("patients.id", ondelete="CASCADE"), nullable=False),
        sa.Column("label", sa.String(100), nullable=False),
        sa.Column("body_site", sa.String(32)),
        sa.Column("laterality", sa.String(8)),
        sa.Column("map_view", sa.String(8)),
        sa.Column("map_x", sa.Float),
        sa.Column("map_y", sa.Float),
        sa.Column("created", sa.String(40), nullable=False))
    op.create_index("lesions_patient", "lesions", ["patient_id"])
    op.create_table(
        "diagnoses",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("lesion_id", sa.String(64), sa.ForeignKey("lesions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("diagnosis", sa.String(32), nullable=False),
        sa.Column("detail", sa.String(200)),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("confirmed_on", sa.String(10), nullable=False),
        sa.Column("recorded_by", sa.String(100), nullable=False),
        sa.Column("created", sa.String(40), nullable=False))
    op.create_index("diagnoses_lesion", "diagnoses", ["lesion_id"])
    with op.batch_alter_table("analyses") as table:
        table.add_column(sa.Column("lesion_id", sa.String(64)))
        table.create_index("analyses_lesion", ["lesion_id"])
    _case_references_become_patients()


def _case_references_become_patients():
    connection = op.get_bind()
    analyses = sa.table("analyses", sa.column("id"), sa.column("case_ref"), sa.column("owner"),
                        sa.column("created"), sa.column("lesion_id"))
    patients = sa.table("patients", sa.column("id"), sa.column("identifier"), sa.column("owner"), sa.column("created"))
    lesions = sa.table("lesions", sa.column("id"), sa.column("patient_id"), sa.column("label"), sa.column("created"))
    cases = connection.execute(
        sa.select(analyses.c.case_ref, analyses.c.owner, sa.func.min(analyses.c.created))
        .where(analyses.c.case_ref.is_not(None), analyses.c.case_ref != "")
        .group_by(analyses.c.case_ref, analyses.c.owner)).all()
    now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    for case_ref, owner, first in cases:
        patient_id, lesion_id = uuid.uuid4().hex, uuid.uuid4().hex
        connection.execute(patients.insert().values(id=patient_id, identifier=case_ref[:100], owner=owner,
                                                    created=first or now))
        connection.execute(lesions.insert().values(id=lesion_id, patient_id=patient_id, label="Lesion 1",
                                                   created=first or now))
        owned = analyses.c.owner.is_(None) if owner is None else analyses.c.owner == owner
        connection.execute(analyses.update().where(analyses.c.case_ref == case_ref, owned)
                           .values(lesion_id=lesion_id))


def downgrade():
    with op.batch_alter_table("analyses") as table:
        table.drop_index("analyses_lesion")
        table.drop_column("lesion_id")
    op.drop_table("diagnoses")
    op.drop_table("lesions")
    op.drop_table("patients")
