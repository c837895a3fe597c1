"""The one database of the web app: SQLite (a file path, the default) or PostgreSQL (a URL).

    SKINLESION_DATABASE=instance/analyses.sqlite3                      # one host
    SKINLESION_DATABASE=postgresql://user:password@host:5432/lesions  # several hosts

SQLAlchemy Core speaks both dialects, so the stores write plain table expressions rather
than SQL strings per database. The tables below are the schema as it is now; Alembic's
migrations (webapp/migrations/versions) bring any older database to it on start-up, in
place, once, whichever host starts first. A change to a table here needs a migration there
(tests/test_migrations.py compares the two).
"""
import os
from pathlib import Path

from sqlalchemy import (Column, Float, ForeignKey, Index, Integer, LargeBinary, MetaData, String, Table,
                        Text, create_engine, event, inspect, select, text)
from sqlalchemy.exc import DatabaseError, IntegrityError  # noqa: F401 (re-exported)

metadata = MetaData()

analyses = Table(
    "analyses", metadata,
    Column("id", String(64), primary_key=True),
    Column("created", String(40), nullable=False),
    Column("files", Text, nullable=False),
    # Analysis.summary() as JSON, stored once: the pages, the API and the exports read it;
    # columns are only for what is searched or sorted (created, case_ref, owner, lesion_id).
    Column("summary", Text, nullable=False),
    Column("original_name", Text),
    Column("image_sha256", String(64)),
    Column("case_ref", Text),
    Column("note", Text),
    Column("owner", String(80)),
    Column("lesion_id", String(64)),  # the lesion this analysis is a visit of (none: a loose image)
    Index("analyses_created", "created"),
    Index("analyses_case", "case_ref"),
    Index("analyses_lesion", "lesion_id"),
)

# A patient is the clinic's identifier and nothing else; who may see it is its owner's
# (the account that created it; anyone's when accounts are off).
patients = Table(
    "patients", metadata,
    Column("id", String(64), primary_key=True),
    Column("identifier", String(100), nullable=False),
    Column("owner", String(80)),
    Column("created", String(40), nullable=False),
    Index("patients_identifier", "identifier"),
)

# A lesion of a patient, where it is: a site of skinlesion.body_sites, its side, and the
# point marked on the body map (view "front"/"back", x and y as fractions of the figure).
lesions = Table(
    "lesions", metadata,
    Column("id", String(64), primary_key=True),
    Column("patient_id", String(64), ForeignKey("patients.id", ondelete="CASCADE"), nullable=False),
    Column("label", String(100), nullable=False),
    Column("body_site", String(32)),
    Column("laterality", String(8)),
    Column("map_view", String(8)),
    Column("map_x", Float),
    Column("map_y", Float),
    Column("created", String(40), nullable=False),
    Index("lesions_patient", "patient_id"),
)

# The classifier's pooled features of an analysis' lesion crop (float16, unit length), and which
# model made them: the clinic's confirmed cases are searched by them (skinlesion.similar).
analysis_features = Table(
    "analysis_features", metadata,
    Column("analysis_id", String(64), ForeignKey("analyses.id", ondelete="CASCADE"), primary_key=True),
    Column("model_sha256", String(64), nullable=False),
    Column("vector", LargeBinary, nullable=False),
)

# A lesion's final diagnosis as a clinician recorded it; the newest row is the one that holds.
diagnoses = Table(
    "diagnoses", metadata,
    Column("id", String(64), primary_key=True),
    Column("lesion_id", String(64), ForeignKey("lesions.id", ondelete="CASCADE"), nullable=False),
    Column("diagnosis", String(32), nullable=False),
    Column("detail", String(200)),
    Column("method", String(32), nullable=False),
    Column("confirmed_on", String(10), nullable=False),
    Column("recorded_by", String(100), nullable=False),
    Column("created", String(40), nullable=False),
    Index("diagnoses_lesion", "lesion_id"),
)

batches = Table(
    "batches", metadata,
    Column("id", String(64), primary_key=True),
    Column("created", String(40), nullable=False),
    Column("owner", String(80)),
    Column("analyses", Text, nullable=False),
    Column("failures", Text, nullable=False),
)

users = Table(
    "users", metadata,
    Column("name", String(64), primary_key=True),
    Column("password_hash", Text, nullable=False),
    Column("created", String(40), nullable=False),
    Column("id", String(80)),
    Column("session_version", Integer, nullable=False, server_default="0"),
)

# One row per (user name, client address): failures and the time of the last one.
login_throttle = Table(
    "login_throttle", metadata,
    Column("key", String(400), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("last", Float, nullable=False),
)

# Work per account in the current window (webapp/limits.py): one row per (account, kind).
work_counts = Table(
    "work_counts", metadata,
    Column("key", String(120), primary_key=True),
    Column("count", Integer, nullable=False),
    Column("window_start", Float, nullable=False),
)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def is_url(database):
    return "://" in str(database)


def database_url(database):
    """A path becomes a SQLite URL (its folder created); a URL is used as it is."""
    if is_url(database):
        url = str(database)
        # psycopg 3 is the driver: "postgresql://" alone would ask SQLAlchemy for psycopg2.
        return url.replace("postgresql://", "postgresql+psycopg://", 1) if url.startswith("postgresql://") else url
    path = Path(database)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():  # patients' data: readable by the server's user only
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    return f"sqlite:///{path}"


def _sqlite_pragmas(dbapi_connection, _record):
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout = 30000")  # workers wait for each other's writes
    cursor.close()


def connect(database):
    """An Engine for the path or URL, with the schema created and migrated."""
    url = database_url(database)
    engine = create_engine(url, pool_pre_ping=True, future=True)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    migrate(engine)
    return engine


def migrate(engine):
    """Bring the database to the newest schema with Alembic (a new one is made from nothing).
    A database of the releases before Alembic counted its versions in `schema_version`;
    the first migrations are written to find their work done or not, so it is dropped and
    the database upgraded from the start."""
    from alembic import command
    from alembic.config import Config
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":  # one host migrates at a time
            connection.execute(text("SELECT pg_advisory_xact_lock(4242)"))
        tables = inspect(connection).get_table_names()
        if "schema_version" in tables and "alembic_version" not in tables:
            connection.execute(text("DROP TABLE schema_version"))
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def check(engine, database):
    """None when the database answers, else the reason (for the health check)."""
    try:
        with engine.connect() as connection:
            connection.execute(select(analyses.c.id).limit(1)).fetchall()
    except DatabaseError as error:
        return f"the database {describe(database)} cannot be read ({error.orig or error})"
    return None


def describe(database):
    """The database for messages and logs, without a password."""
    if not is_url(database):
        return Path(database).name
    from sqlalchemy.engine import make_url
    return make_url(str(database)).render_as_string(hide_password=True)
