"""The one database of the web app: SQLite (a file path, the default) or PostgreSQL (a URL).

    SKINLESION_DATABASE=instance/analyses.sqlite3                      # one host
    SKINLESION_DATABASE=postgresql://user:password@host:5432/lesions  # several hosts

SQLAlchemy Core speaks both dialects, so the stores write plain table expressions rather
than SQL strings per database. One schema for analyses, batches, accounts and login
throttling, created on start-up; `schema_version` records the migrations applied, so an
older database is upgraded in place, once, whichever host starts first.
"""
import os
from pathlib import Path

from sqlalchemy import (Column, Float, Index, Integer, MetaData, String, Table, Text, create_engine,
                        event, inspect, select, text)
from sqlalchemy.exc import DatabaseError, IntegrityError  # noqa: F401 (re-exported)

metadata = MetaData()

analyses = Table(
    "analyses", metadata,
    Column("id", String(64), primary_key=True),
    Column("created", String(40), nullable=False),
    Column("task", String(32), nullable=False),
    Column("prediction", String(32), nullable=False),
    Column("probabilities", Text, nullable=False),
    Column("malignant_probability", Float, nullable=False),
    Column("suspicious", Integer, nullable=False),
    Column("low_confidence", Integer, nullable=False),
    Column("lesion", Text, nullable=False),
    Column("models", Text, nullable=False),
    Column("files", Text, nullable=False),
    Column("summary", Text, nullable=False),
    Column("original_name", Text),
    Column("image_sha256", String(64)),
    Column("case_ref", Text),
    Column("note", Text),
    Column("owner", String(80)),
    Index("analyses_created", "created"),
    Index("analyses_case", "case_ref"),
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

schema_version = Table("schema_version", metadata, Column("version", Integer, primary_key=True))

# Each migration brings a database written by an older release up to the next version.
# Version 1: the tables above. Version 2: accounts got an id and a session version
# (databases of the first release have users without them).
SCHEMA_VERSION = 2


def _add_account_columns(connection):
    present = {column["name"] for column in inspect(connection).get_columns("users")}
    if "id" not in present:
        connection.execute(text("ALTER TABLE users ADD COLUMN id VARCHAR(80)"))
    if "session_version" not in present:
        connection.execute(text("ALTER TABLE users ADD COLUMN session_version INTEGER NOT NULL DEFAULT 0"))


MIGRATIONS = {2: _add_account_columns}


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
    """Create missing tables, then apply the migrations a database has not had yet."""
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":  # one host migrates at a time
            connection.execute(text("SELECT pg_advisory_xact_lock(4242)"))
        existed = inspect(connection).has_table("users")
        metadata.create_all(connection)
        current = connection.execute(select(schema_version.c.version)).scalar()
        if current is None:
            current = 1 if existed else SCHEMA_VERSION  # a new database needs no migration
            connection.execute(schema_version.insert().values(version=current))
        for version in range(current + 1, SCHEMA_VERSION + 1):
            MIGRATIONS[version](connection)
            connection.execute(schema_version.update().values(version=version))


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
