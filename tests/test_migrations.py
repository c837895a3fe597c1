"""Alembic's migrations against the schema the code expects, and an upgrade of a database
made by the release before patients and lesions (its case references become patients)."""
import json
import sqlite3

from sqlalchemy import create_engine, inspect, select, text

from test_postgres import database, postgres_server, postgres_url  # noqa: F401 (fixtures)
from webapp import db

# The schema the release before Alembic wrote (sqlite3's .schema of one of its databases).
SCHEMA_BEFORE_PATIENTS = """
CREATE TABLE analyses (id VARCHAR(64) NOT NULL, created VARCHAR(40) NOT NULL, task VARCHAR(32) NOT NULL,
  prediction VARCHAR(32) NOT NULL, probabilities TEXT NOT NULL, malignant_probability FLOAT NOT NULL,
  suspicious INTEGER NOT NULL, low_confidence INTEGER NOT NULL, lesion TEXT NOT NULL, models TEXT NOT NULL,
  files TEXT NOT NULL, summary TEXT NOT NULL, original_name TEXT, image_sha256 VARCHAR(64), case_ref TEXT,
  note TEXT, owner VARCHAR(80), PRIMARY KEY (id));
CREATE INDEX analyses_created ON analyses (created);
CREATE INDEX analyses_case ON analyses (case_ref);
CREATE TABLE batches (id VARCHAR(64) NOT NULL, created VARCHAR(40) NOT NULL, owner VARCHAR(80),
  analyses TEXT NOT NULL, failures TEXT NOT NULL, PRIMARY KEY (id));
CREATE TABLE users (name VARCHAR(64) NOT NULL, password_hash TEXT NOT NULL, created VARCHAR(40) NOT NULL,
  id VARCHAR(80), session_version INTEGER DEFAULT '0' NOT NULL, PRIMARY KEY (name));
CREATE TABLE login_throttle ("key" VARCHAR(400) NOT NULL, failures INTEGER NOT NULL, last FLOAT NOT NULL,
  PRIMARY KEY ("key"));
CREATE TABLE work_counts ("key" VARCHAR(120) NOT NULL, count INTEGER NOT NULL, window_start FLOAT NOT NULL,
  PRIMARY KEY ("key"));
CREATE TABLE schema_version (version INTEGER NOT NULL, PRIMARY KEY (version));
INSERT INTO schema_version VALUES (2);
"""

ROWS = [  # id, created, case reference, owner
    ("a1", "2026-01-01T10:00:00.000+00:00", "FOLLOW-1", "acct-alice"),
    ("a2", "2026-02-01T10:00:00.000+00:00", "FOLLOW-1", "acct-alice"),
    ("a3", "2026-02-02T10:00:00.000+00:00", "FOLLOW-1", "acct-bob"),  # another account's case of that name
    ("a4", "2026-02-03T10:00:00.000+00:00", None, "acct-alice"),
    ("a5", "2026-02-04T10:00:00.000+00:00", "P-7", None),
]


def insert_rows(connection):
    for analysis_id, created, case_ref, owner in ROWS:
        connection.execute(text(
            "INSERT INTO analyses (id, created, task, prediction, probabilities, malignant_probability, suspicious,"
            " low_confidence, lesion, models, files, summary, original_name, image_sha256, case_ref, note, owner)"
            " VALUES (:id, :created, '7class', 'nv', '{}', 0.1, 0, 0, '{}', '{}', :files, '{}', 'x.jpg', NULL,"
            " :case_ref, 'kept', :owner)"),
            {"id": analysis_id, "created": created, "case_ref": case_ref, "owner": owner,
             "files": json.dumps({"upload": f"{analysis_id}.upload"})})


def made_by_the_release_before(target):
    """A database as the release before Alembic left it, with five analyses."""
    if str(target).startswith("postgresql"):
        # The same schema by that release's own route: its tables, then schema_version 2.
        engine = create_engine(db.database_url(target))
        with engine.begin() as connection:
            for statement in SCHEMA_BEFORE_PATIENTS.split(";"):
                if statement.strip():
                    connection.execute(text(statement.replace("FLOAT", "DOUBLE PRECISION")))
            insert_rows(connection)
        engine.dispose()
        return
    with sqlite3.connect(target) as connection:
        connection.executescript(SCHEMA_BEFORE_PATIENTS)
    engine = create_engine(db.database_url(target))
    with engine.begin() as connection:
        insert_rows(connection)
    engine.dispose()


def test_the_migrations_make_exactly_the_schema_the_code_uses(database):  # noqa: F811
    """One fact in one place: db.py's tables and the migrations may not drift apart."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    engine = db.connect(database)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), db.metadata)
    assert differences == []


def test_a_database_of_the_release_before_is_upgraded_and_loses_nothing(database):  # noqa: F811
    made_by_the_release_before(database)
    engine = db.connect(database)
    with engine.connect() as connection:
        tables = inspect(connection).get_table_names()
        rows = connection.execute(select(db.analyses).order_by(db.analyses.c.id)).mappings().all()
        patients = connection.execute(select(db.patients)).mappings().all()
        lesions = connection.execute(select(db.lesions)).mappings().all()
    assert "schema_version" not in tables and "alembic_version" in tables
    assert [r["id"] for r in rows] == [r[0] for r in ROWS]
    assert [r["case_ref"] for r in rows] == [r[2] for r in ROWS] and {r["note"] for r in rows} == {"kept"}
    # One patient per (owner, case reference), one lesion each; a4 had no case and stays loose.
    assert sorted((p["identifier"], p["owner"] or "") for p in patients) == [
        ("FOLLOW-1", "acct-alice"), ("FOLLOW-1", "acct-bob"), ("P-7", "")]
    by_id = {r["id"]: r["lesion_id"] for r in rows}
    assert by_id["a1"] == by_id["a2"] and len({by_id["a1"], by_id["a3"], by_id["a5"]}) == 3 and by_id["a4"] is None
    patient_of = {lesion["id"]: lesion["patient_id"] for lesion in lesions}
    owner_of = {patient["id"]: patient["owner"] for patient in patients}
    assert all(owner_of[patient_of[by_id[r["id"]]]] == r["owner"] for r in rows if r["lesion_id"])
    from webapp.store import Store  # the copied columns are folded into each summary, then dropped
    kept = Store(database, engine).get("a1")
    assert kept["prediction"] == "nv" and kept["summary"]["task"] == "7class"
    assert kept["summary"]["malignant_probability"] == 0.1 and kept["summary"]["suspicious"] is False
    assert "prediction" not in {column["name"] for column in inspect(engine).get_columns("analyses")}
    db.connect(database)  # a second start changes nothing
    with engine.connect() as connection:
        assert len(connection.execute(select(db.patients)).all()) == 3
