"""Patients, their lesions and confirmed diagnoses (webapp/db.py's tables); an analysis is a
visit of a lesion through its `lesion_id`.

Who may see a patient is decided by its owner (the account that made it), as for analyses;
a lesion and its diagnoses are its patient's.
"""
import json
import uuid

import numpy as np

from sqlalchemy import delete, func, select

from skinlesion.body_sites import check_site
from skinlesion.classes import DISPLAY_NAMES
from skinlesion.similar import normalised

from . import db
from .store import _decode, now

MAX_IDENTIFIER_CHARS = 100
DIAGNOSES = {**DISPLAY_NAMES, "other": "Other (say which)"}
METHODS = {"histopathology": "Histopathology", "follow-up": "Follow-up without change",
           "consensus": "Expert consensus"}


class PatientStore:
    def __init__(self, engine):
        self.engine = engine

    # Patients
    def patient(self, patient_id):
        with self.engine.connect() as connection:
            row = connection.execute(select(db.patients).where(db.patients.c.id == patient_id)).mappings().first()
        return dict(row) if row else None

    def find_patient(self, identifier, owner):
        query = select(db.patients).where(db.patients.c.identifier == identifier, _owned(db.patients, owner))
        with self.engine.connect() as connection:
            row = connection.execute(query.order_by(db.patients.c.created)).mappings().first()
        return dict(row) if row else None

    def find_or_add_patient(self, identifier, owner):
        found = self.find_patient(identifier, owner)
        if found:
            return found
        patient = {"id": uuid.uuid4().hex, "identifier": identifier, "owner": owner, "created": now()}
        with self.engine.begin() as connection:
            connection.execute(db.patients.insert().values(**patient))
        return self.find_patient(identifier, owner)  # two requests at once: both get the first

    def patients(self, owner=None, search=None, limit=200):
        """Newest first, with their lesion and visit counts and the last visit's time."""
        visits = (select(db.lesions.c.patient_id, func.count(db.analyses.c.id).label("visits"),
                         func.max(db.analyses.c.created).label("last_visit"))
                  .select_from(db.lesions.join(db.analyses, db.analyses.c.lesion_id == db.lesions.c.id))
                  .group_by(db.lesions.c.patient_id).subquery())
        lesion_counts = (select(db.lesions.c.patient_id, func.count().label("lesions"))
                         .group_by(db.lesions.c.patient_id).subquery())
        query = (select(db.patients, func.coalesce(lesion_counts.c.lesions, 0).label("lesions"),
                        func.coalesce(visits.c.visits, 0).label("visits"), visits.c.last_visit)
                 .outerjoin(lesion_counts, lesion_counts.c.patient_id == db.patients.c.id)
                 .outerjoin(visits, visits.c.patient_id == db.patients.c.id))
        if owner is not None:
            query = query.where(db.patients.c.owner == owner)
        if search:
            escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(db.patients.c.identifier.ilike(f"%{escaped}%", escape="\\"))
        query = query.order_by(func.coalesce(visits.c.last_visit, db.patients.c.created).desc()).limit(limit)
        with self.engine.connect() as connection:
            return [dict(row) for row in connection.execute(query).mappings()]

    def delete_patient(self, patient_id):
        """Removes the patient, its lesions, diagnoses and analyses in one transaction; returns
        the analyses' file names (the caller removes the files once the rows are gone)."""
        lesion_ids = select(db.lesions.c.id).where(db.lesions.c.patient_id == patient_id)
        with self.engine.begin() as connection:
            files = [json.loads(f) for (f,) in connection.execute(
                select(db.analyses.c.files).where(db.analyses.c.lesion_id.in_(lesion_ids)))]
            visit_ids = select(db.analyses.c.id).where(db.analyses.c.lesion_id.in_(lesion_ids))
            connection.execute(delete(db.analysis_features).where(db.analysis_features.c.analysis_id.in_(visit_ids)))
            connection.execute(delete(db.analyses).where(db.analyses.c.lesion_id.in_(lesion_ids)))
            connection.execute(delete(db.diagnoses).where(db.diagnoses.c.lesion_id.in_(lesion_ids)))
            connection.execute(delete(db.lesions).where(db.lesions.c.patient_id == patient_id))
            removed = connection.execute(delete(db.patients).where(db.patients.c.id == patient_id)).rowcount
        return files if removed else []

    # Lesions
    def add_lesion(self, patient_id, label=None, site=None, laterality=None, view=None, x=None, y=None):
        """A new lesion of the patient; label defaults to 'Lesion N'. Raises ValueError."""
        place = check_site(site, laterality, view, x, y)
        with self.engine.begin() as connection:
            count = connection.execute(select(func.count()).select_from(db.lesions)
                                       .where(db.lesions.c.patient_id == patient_id)).scalar()
            lesion = {"id": uuid.uuid4().hex, "patient_id": patient_id, "label": (label or f"Lesion {count + 1}")[:100],
                      "created": now(), **place}
            connection.execute(db.lesions.insert().values(**lesion))
        return lesion

    def lesion(self, lesion_id):
        with self.engine.connect() as connection:
            row = connection.execute(select(db.lesions).where(db.lesions.c.id == lesion_id)).mappings().first()
        return dict(row) if row else None

    def places(self, lesion_ids):
        """{lesion id: (lesion, its patient)} of the given lesions, in one query."""
        ids = sorted({i for i in lesion_ids if i})
        if not ids:
            return {}
        query = (select(db.lesions, db.patients.c.identifier, db.patients.c.owner)
                 .join(db.patients, db.patients.c.id == db.lesions.c.patient_id).where(db.lesions.c.id.in_(ids)))
        with self.engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return {row["id"]: ({k: v for k, v in row.items() if k not in ("identifier", "owner")},
                            {"id": row["patient_id"], "identifier": row["identifier"], "owner": row["owner"]})
                for row in rows}

    def lesions_of(self, patient_id):
        query = select(db.lesions).where(db.lesions.c.patient_id == patient_id).order_by(db.lesions.c.created)
        with self.engine.connect() as connection:
            return [dict(row) for row in connection.execute(query).mappings()]

    def visits(self, lesion_id):
        """The lesion's analyses, oldest first."""
        query = (select(db.analyses).where(db.analyses.c.lesion_id == lesion_id)
                 .order_by(db.analyses.c.created, db.analyses.c.id))
        with self.engine.connect() as connection:
            return [_decode(row) for row in connection.execute(query).mappings()]

    # Confirmed diagnoses
    def add_diagnosis(self, lesion_id, diagnosis, method, confirmed_on, recorded_by, detail=None):
        row = {"id": uuid.uuid4().hex, "lesion_id": lesion_id, "diagnosis": diagnosis, "detail": detail or None,
               "method": method, "confirmed_on": confirmed_on, "recorded_by": recorded_by, "created": now()}
        with self.engine.begin() as connection:
            connection.execute(db.diagnoses.insert().values(**row))
        return row

    def diagnosis(self, lesion_id):
        """The diagnosis that holds (the newest recorded), or None."""
        query = (select(db.diagnoses).where(db.diagnoses.c.lesion_id == lesion_id)
                 .order_by(db.diagnoses.c.created.desc(), db.diagnoses.c.id.desc()).limit(1))
        with self.engine.connect() as connection:
            row = connection.execute(query).mappings().first()
        return dict(row) if row else None

    def confirmed_visits(self, owner=None):
        """(analysis, diagnosis that holds) for every visit of a lesion with a confirmed diagnosis."""
        holding = _holding_diagnoses()
        query = (select(db.analyses, holding.c.diagnosis.label("confirmed_diagnosis"),
                        holding.c.method.label("confirmed_method"), holding.c.confirmed_on.label("confirmed_on"))
                 .join(holding, holding.c.lesion_id == db.analyses.c.lesion_id)
                 .order_by(db.analyses.c.created))
        if owner is not None:
            query = query.where(db.analyses.c.owner == owner)
        with self.engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        confirmed = ("confirmed_diagnosis", "confirmed_method", "confirmed_on")
        return [(_decode({k: v for k, v in row.items() if k not in confirmed}),
                 {"diagnosis": row["confirmed_diagnosis"], "method": row["confirmed_method"],
                  "confirmed_on": row["confirmed_on"]}) for row in rows]


    # Features of analyses, for the clinic's own similar cases
    def add_features(self, analysis_id, model_sha256, vector):
        with self.engine.begin() as connection:
            connection.execute(db.analysis_features.insert().values(
                analysis_id=analysis_id, model_sha256=model_sha256,
                vector=normalised(np.asarray(vector, np.float32)[None])[0].astype(np.float16).tobytes()))

    def features_of(self, analysis_id):
        """(model sha256, unit vector) of an analysis, or None."""
        query = select(db.analysis_features).where(db.analysis_features.c.analysis_id == analysis_id)
        with self.engine.connect() as connection:
            row = connection.execute(query).mappings().first()
        return (row["model_sha256"], np.frombuffer(row["vector"], np.float16).astype(np.float32)) if row else None

    def confirmed_gallery(self, model_sha256, owner=None, leave_out_lesion=None):
        """The clinic's confirmed visits made by that model, as a skinlesion.similar.Gallery
        (brute force: fine to about 100,000 cases; beyond, PostgreSQL's pgvector would index them)."""
        from skinlesion.similar import Gallery
        holding = _holding_diagnoses()
        query = (select(db.analyses.c.id, db.analyses.c.lesion_id, db.analyses.c.created, db.analyses.c.files,
                        holding.c.diagnosis, holding.c.method, db.analysis_features.c.vector)
                 .join(holding, holding.c.lesion_id == db.analyses.c.lesion_id)
                 .join(db.analysis_features, db.analysis_features.c.analysis_id == db.analyses.c.id)
                 .where(db.analysis_features.c.model_sha256 == model_sha256))
        if owner is not None:
            query = query.where(db.analyses.c.owner == owner)
        if leave_out_lesion:
            query = query.where(db.analyses.c.lesion_id != leave_out_lesion)
        with self.engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        cases = [{"analysis_id": row["id"], "lesion_id": row["lesion_id"], "dx": row["diagnosis"],
                  "method": row["method"], "created": row["created"], "source": "this clinic"} for row in rows]
        vectors = [np.frombuffer(row["vector"], np.float16).astype(np.float32) for row in rows]
        features = np.stack(vectors) if vectors else np.zeros((0, 1), np.float32)
        return Gallery(features, cases, {"model_sha256": model_sha256})


def _holding_diagnoses():
    """A subquery of the diagnosis that holds for each confirmed lesion: its newest row."""
    newest = (select(db.diagnoses.c.lesion_id, func.max(db.diagnoses.c.created).label("created"))
              .group_by(db.diagnoses.c.lesion_id).subquery())
    return (select(db.diagnoses).join(newest, (newest.c.lesion_id == db.diagnoses.c.lesion_id)
                                      & (newest.c.created == db.diagnoses.c.created)).subquery())


def _owned(table, owner):
    return table.c.owner.is_(None) if owner is None else table.c.owner == owner
