"""The store of analyses and batches, one row each (webapp/db.py: SQLite or PostgreSQL).

Files are written before the row is inserted, so a crash leaves at worst orphan
files, never a row pointing at missing files. Orphans are swept once per start of the
server (its master process) or by `flask --app app sweep`, and only when older than a
grace period: a file without a row may belong to an analysis another process, or another
host sharing the storage, is writing.
"""
import json
from datetime import datetime, timezone

from sqlalchemy import delete, func, or_, select

from . import db

JSON_COLUMNS = ("files", "summary")


def new_record(summary, **fields):
    """An analysis as the web app holds it: its summary (Analysis.summary(), stored once) with
    the web app's own fields (id, files, original_name, image_sha256, case_ref, note, owner,
    lesion_id); the summary's fields are also read at the top level (record["prediction"])."""
    return summary | fields | {"summary": summary}


class Store:
    def __init__(self, database, engine=None):
        """database: a path (SQLite) or a URL; engine: an already connected one to share."""
        self.database = database
        self.engine = engine or db.connect(database)

    def check(self):
        """None when the database answers, else the reason (for the health check)."""
        return db.check(self.engine, self.database)

    def add(self, record):
        record = dict(record, created=record.get("created") or now())
        values = {k: json.dumps(v) if k in JSON_COLUMNS else v for k, v in record.items()
                  if k in db.analyses.c}  # the summary's fields are in its JSON, not columns
        with self.engine.begin() as connection:  # one transaction
            connection.execute(db.analyses.insert().values(**values))
        return record

    def get(self, analysis_id):
        with self.engine.connect() as connection:
            row = connection.execute(select(db.analyses).where(db.analyses.c.id == analysis_id)).mappings().first()
        return _decode(row) if row else None

    def list(self, case_ref=None, owner=None, limit=200, offset=0):
        """Newest first; case_ref matches a substring; owner (when given) must match."""
        query = (select(db.analyses).where(*_filters(case_ref, owner))
                 .order_by(db.analyses.c.created.desc(), db.analyses.c.id.desc()).limit(limit).offset(offset))
        with self.engine.connect() as connection:
            return [_decode(row) for row in connection.execute(query).mappings()]

    def count(self, case_ref=None, owner=None):
        query = select(func.count()).select_from(db.analyses).where(*_filters(case_ref, owner))
        with self.engine.connect() as connection:
            return connection.execute(query).scalar()

    def delete(self, analysis_id):
        """Removes the row; the count tells the caller whether it was this call that did
        (two hosts deleting at once: only one of them goes on to remove the files)."""
        with self.engine.begin() as connection:
            connection.execute(delete(db.analysis_features).where(db.analysis_features.c.analysis_id == analysis_id))
            return connection.execute(delete(db.analyses).where(db.analyses.c.id == analysis_id)).rowcount

    def older_than(self, cutoff_iso):
        with self.engine.connect() as connection:
            rows = connection.execute(select(db.analyses).where(db.analyses.c.created < cutoff_iso)).mappings()
            return [_decode(row) for row in rows]

    def all_file_names(self):
        names = set()
        with self.engine.connect() as connection:
            for (files,) in connection.execute(select(db.analyses.c.files)):
                names.update(json.loads(files).values())
        return names

    def add_batch(self, batch_id, owner, analysis_ids, failures):
        """A batch is the list of its analyses (and of the files skipped), so that its page
        has an address of its own (post/redirect/get)."""
        with self.engine.begin() as connection:
            connection.execute(db.batches.insert().values(id=batch_id, created=now(), owner=owner,
                                                          analyses=json.dumps(analysis_ids),
                                                          failures=json.dumps(failures)))

    def get_batch(self, batch_id):
        with self.engine.connect() as connection:
            row = connection.execute(select(db.batches).where(db.batches.c.id == batch_id)).mappings().first()
        if row is None:
            return None
        return dict(row) | {"analyses": json.loads(row["analyses"]), "failures": json.loads(row["failures"])}


def now():
    # Milliseconds: two analyses of one case in the same second still have an order.
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _filters(case_ref, owner):
    """Conditions for a substring of the case reference or patient identifier, and an owner."""
    conditions = []
    if case_ref:
        escaped = case_ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
        of_patients = (select(db.lesions.c.id).join(db.patients, db.patients.c.id == db.lesions.c.patient_id)
                       .where(db.patients.c.identifier.ilike(pattern, escape="\\")))
        conditions.append(or_(db.analyses.c.case_ref.ilike(pattern, escape="\\"),
                              db.analyses.c.lesion_id.in_(of_patients)))
    if owner is not None:
        conditions.append(db.analyses.c.owner == owner)
    return conditions


def _decode(row):
    """A row as a record (new_record's form)."""
    record = dict(row)
    for name in JSON_COLUMNS:
        record[name] = json.loads(record[name])
    return record["summary"] | record
