"""SQLite store of analyses (standard library only). One row per analysis.

Files are written before the row is inserted, so a crash leaves at worst orphan
files, never a row pointing at missing files. Orphans are swept once per start of the
server (its master process) or by `flask --app app sweep`, and only when older than a
grace period: a file without a row may belong to an analysis another process is writing.
"""
import json
import os
import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path

ORPHAN_GRACE_SECONDS = 60 * 60  # an analysis takes seconds; a worker times out after minutes

SCHEMA = """
CREATE TABLE IF NOT EXISTS analyses (
    id TEXT PRIMARY KEY,
    created TEXT NOT NULL,
    task TEXT NOT NULL,
    prediction TEXT NOT NULL,
    probabilities TEXT NOT NULL,
    malignant_probability REAL NOT NULL,
    suspicious INTEGER NOT NULL,
    low_confidence INTEGER NOT NULL,
    lesion TEXT NOT NULL,
    models TEXT NOT NULL,
    files TEXT NOT NULL,
    summary TEXT NOT NULL,
    original_name TEXT,
    image_sha256 TEXT,
    case_ref TEXT,
    note TEXT,
    owner TEXT
);
CREATE INDEX IF NOT EXISTS analyses_created ON analyses (created);
CREATE INDEX IF NOT EXISTS analyses_case ON analyses (case_ref);
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY,
    created TEXT NOT NULL,
    owner TEXT,
    analyses TEXT NOT NULL,
    failures TEXT NOT NULL
);
"""
JSON_COLUMNS = ("probabilities", "lesion", "models", "files", "summary")


class Store:
    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():  # patients' data: readable by the server's user only
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        with self._connect() as connection:
            connection.executescript(SCHEMA)

    def check(self):
        """None when the database answers, else the reason (for the health check)."""
        try:
            with self._connect() as connection:
                connection.execute("SELECT id FROM analyses LIMIT 1").fetchall()
        except sqlite3.Error as error:
            return f"the database {self.path.name} cannot be read ({error})"
        return None

    def _connect(self):
        connection = sqlite3.connect(self.path, timeout=30)
        connection.row_factory = sqlite3.Row
        return connection

    def add(self, record):
        record = dict(record, created=record.get("created") or now())
        values = {k: json.dumps(v) if k in JSON_COLUMNS else v for k, v in record.items()}
        columns = ", ".join(values)
        marks = ", ".join(f":{name}" for name in values)
        with self._connect() as connection:  # one transaction
            connection.execute(f"INSERT INTO analyses ({columns}) VALUES ({marks})", values)
        return record

    def get(self, analysis_id):
        with self._connect() as connection:
            row = connection.execute("SELECT * FROM analyses WHERE id = ?", (analysis_id,)).fetchone()
        return _decode(row) if row else None

    def list(self, case_ref=None, owner=None, limit=200, offset=0):
        """Newest first; case_ref matches a substring; owner (when given) must match."""
        where, params = _filters(case_ref, owner)
        query = f"SELECT * FROM analyses{where} ORDER BY created DESC, rowid DESC LIMIT ? OFFSET ?"
        with self._connect() as connection:
            return [_decode(row) for row in connection.execute(query, params + [limit, offset])]

    def count(self, case_ref=None, owner=None):
        where, params = _filters(case_ref, owner)
        with self._connect() as connection:
            return connection.execute(f"SELECT COUNT(*) FROM analyses{where}", params).fetchone()[0]

    def add_batch(self, batch_id, owner, analysis_ids, failures):
        """A batch is the list of its analyses (and of the files skipped), so that its page
        has an address of its own (post/redirect/get)."""
        with self._connect() as connection:
            connection.execute("INSERT INTO batches VALUES (?, ?, ?, ?, ?)",
                               (batch_id, now(), owner, json.dumps(analysis_ids), json.dumps(failures)))

    def get_batch(self, batch_id):
        with self._connect() as connection:
            row = connection.execute("SELECT * FROM batches WHERE id = ?", (batch_id,)).fetchone()
        if row is None:
            return None
        return dict(row) | {"analyses": json.loads(row["analyses"]), "failures": json.loads(row["failures"])}

    def delete(self, analysis_id):
        with self._connect() as connection:
            return connection.execute("DELETE FROM analyses WHERE id = ?", (analysis_id,)).rowcount

    def older_than(self, cutoff_iso):
        with self._connect() as connection:
            rows = connection.execute("SELECT * FROM analyses WHERE created < ?", (cutoff_iso,))
            return [_decode(row) for row in rows]

    def all_file_names(self):
        names = set()
        with self._connect() as connection:
            for (files,) in connection.execute("SELECT files FROM analyses"):
                names.update(json.loads(files).values())
        return names


def sweep_orphans(store, folders, grace_seconds=ORPHAN_GRACE_SECONDS):
    """Remove files that no row names and that are older than the grace period; returns
    how many. Run once per server start (not per worker) or from the command line."""
    known = store.all_file_names()
    cutoff = time.time() - grace_seconds
    removed = 0
    for folder in folders:
        for path in Path(folder).glob("*"):
            if (path.is_file() and not path.name.startswith(".") and path.name not in known
                    and path.stat().st_mtime < cutoff):
                path.unlink(missing_ok=True)
                removed += 1
    return removed


def now():
    # Milliseconds: two analyses of one case in the same second still have an order.
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _filters(case_ref, owner):
    """(WHERE clause, parameters) for a case-reference substring and an owner."""
    conditions, params = [], []
    if case_ref:
        conditions.append("case_ref LIKE ? ESCAPE '\\'")
        escaped = case_ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params.append(f"%{escaped}%")
    if owner is not None:
        conditions.append("owner = ?")
        params.append(owner)
    return (" WHERE " + " AND ".join(conditions) if conditions else ""), params


def _decode(row):
    record = dict(row)
    for name in JSON_COLUMNS:
        record[name] = json.loads(record[name])
    return record
