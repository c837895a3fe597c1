"""The store on SQLite and PostgreSQL alike, and two app instances sharing one PostgreSQL.

The PostgreSQL server is a throwaway cluster (Debian's `postgresql` package: initdb and
pg_ctl, run as an unprivileged user, on a free port, in a temporary folder); without the
server binaries these tests skip.
"""
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from conftest import ROOT
from test_web import jpeg_bytes


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def postgres_bin():
    found = shutil.which("initdb") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))[-1:]), None)
    return Path(found).parent if found else None


@pytest.fixture(scope="session")
def postgres_server():
    """(host, port, user) of a PostgreSQL cluster that lives as long as the test session."""
    binaries = postgres_bin()
    if binaries is None:
        pytest.skip("PostgreSQL server binaries are not installed (apt-get install postgresql)")
    pytest.importorskip("psycopg")
    # Not under pytest's own temporary folder: that is private to the user running the tests,
    # and the server runs as another user.
    folder = Path(tempfile.mkdtemp(prefix="lesion-lens-postgres-"))
    as_user = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(folder, "postgres")
    port = free_port()
    data = folder / "data"
    subprocess.run(as_user + [str(binaries / "initdb"), "-D", str(data), "-U", "lesions", "--auth=trust",
                              "-E", "UTF8"], check=True, capture_output=True)
    subprocess.run(as_user + [str(binaries / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-w",
                              "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start"],
                   check=True, capture_output=True)
    yield "127.0.0.1", port, "lesions"
    subprocess.run(as_user + [str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"], capture_output=True)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server):
    """A fresh, empty database of its own for each test."""
    import psycopg
    host, port, user = postgres_server
    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(host=host, port=port, user=user, dbname="postgres", autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return f"postgresql://{user}@{host}:{port}/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    if request.param == "sqlite":
        return tmp_path / "db.sqlite3"
    return request.getfixturevalue("postgres_url")


def record(analysis_id, case_ref=None, owner=None, created=None):
    from webapp.store import new_record
    summary = {"task": "7class", "prediction": "nv", "probabilities": {"nv": 0.9, "mel": 0.1},
               "malignant_probability": 0.1, "suspicious": False, "low_confidence": False,
               "lesion": {"found": True}, "models": {}, "ranked": []}
    return new_record(summary, id=analysis_id, created=created, files={"upload": f"{analysis_id}.upload"},
                      original_name="a.jpg", image_sha256="0" * 64, case_ref=case_ref, note=None, owner=owner)


def test_store_round_trip_on_both_databases(database):
    from webapp.store import Store
    store = Store(database)
    for i, case in enumerate(["Case_A", "case%b", "OTHER"]):
        store.add(record(f"id{i}", case, owner="acct-1", created=f"2026-11-24T10:00:0{i}.000+00:00"))
    assert store.get("id0")["probabilities"] == {"nv": 0.9, "mel": 0.1}
    assert [r["id"] for r in store.list()] == ["id2", "id1", "id0"]  # newest first
    assert [r["id"] for r in store.list(case_ref="case_a")] == ["id0"]  # case-insensitive, "_" literal
    assert [r["id"] for r in store.list(case_ref="%b")] == ["id1"]  # "%" literal
    assert store.count() == 3 and store.count(owner="acct-2") == 0
    assert [r["id"] for r in store.list(limit=1, offset=1)] == ["id1"]
    store.add_batch("b1", "acct-1", ["id0", "id1"], [{"name": "x.jpg", "error": "damaged"}])
    assert store.get_batch("b1")["analyses"] == ["id0", "id1"] and store.get_batch("nope") is None
    assert store.all_file_names() == {"id0.upload", "id1.upload", "id2.upload"}
    assert store.delete("id0") == 1 and store.delete("id0") == 0  # the second delete knows it was not first
    assert store.check() is None


def test_two_hosts_writing_at_once_lose_nothing(database):
    """Two stores with engines of their own (as two hosts have) add 40 analyses each at once."""
    from webapp.store import Store
    hosts = [Store(database), Store(database)]
    errors = []

    def write(host, prefix):
        try:
            for i in range(40):
                host.add(record(f"{prefix}{i}", "RACE"))
        except Exception as error:  # noqa: BLE001 - any failure is the finding
            errors.append(error)

    threads = [threading.Thread(target=write, args=(host, name)) for host, name in zip(hosts, "ab")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and hosts[0].count(case_ref="RACE") == 80 == hosts[1].count(case_ref="RACE")


def test_accounts_and_throttling_on_both_databases(database):
    from webapp import db
    from webapp.auth import FREE_ATTEMPTS, Users
    engine = db.connect(database)
    users = Users(engine)
    users.add("alice", "correct horse battery")
    with pytest.raises(ValueError, match="already exists"):
        users.add("alice", "correct horse battery")
    account, version = users.account("alice")
    assert users.verify("alice", "correct horse battery") == account
    users.end_sessions("alice")
    assert users.account("alice") == (account, version + 1)
    waits = [users.begin_attempt("alice|10.0.0.1") for _ in range(FREE_ATTEMPTS + 1)]
    assert waits[:FREE_ATTEMPTS] == [0] * FREE_ATTEMPTS and waits[-1] > 0
    assert users.begin_attempt("alice|10.0.0.2") == 0  # another address is not locked out


def test_concurrent_attempts_from_many_connections_count_exactly(postgres_url):
    from webapp import db
    from webapp.auth import FREE_ATTEMPTS, Users
    users = Users(db.connect(postgres_url))
    barrier = threading.Barrier(10)
    results = []

    def attempt():
        barrier.wait()
        results.append(users.begin_attempt("bob|10.9.9.9"))

    threads = [threading.Thread(target=attempt) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(0) == FREE_ATTEMPTS


def test_an_old_sqlite_database_is_migrated(tmp_path):
    """A database of the first release: users without account ids, analyses owned by name."""
    import sqlite3
    from webapp import db
    from webapp.auth import Users
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.executescript("""
            CREATE TABLE users (name TEXT PRIMARY KEY, password_hash TEXT NOT NULL, created TEXT NOT NULL);
            CREATE TABLE analyses (id TEXT PRIMARY KEY, created TEXT NOT NULL, task TEXT NOT NULL,
              prediction TEXT NOT NULL, probabilities TEXT NOT NULL, malignant_probability REAL NOT NULL,
              suspicious INTEGER NOT NULL, low_confidence INTEGER NOT NULL, lesion TEXT NOT NULL,
              models TEXT NOT NULL, files TEXT NOT NULL, summary TEXT NOT NULL, original_name TEXT,
              image_sha256 TEXT, case_ref TEXT, note TEXT, owner TEXT);
            INSERT INTO users VALUES ('alice', 'x', '2026-01-01');
            INSERT INTO analyses VALUES ('a1', '2026-01-01', '7class', 'nv', '{}', 0.1, 0, 0, '{}', '{}', '{}', '{}',
              NULL, NULL, NULL, NULL, 'alice');""")
    engine = db.connect(path)
    users = Users(engine)
    account, version = users.account("alice")
    assert account.startswith("acct-") and version == 0
    from webapp.store import Store
    assert Store(path, engine).get("a1")["owner"] == account
    db.connect(path)  # a second start changes nothing
    assert users.account("alice") == (account, 0)


def test_a_database_url_needs_a_shared_secret_key(tiny_models, tmp_path, postgres_url):
    from conftest import build_app
    from webapp import ConfigurationError
    config = {"workstation": True, "models_dir": tiny_models, "upload_dir": tmp_path / "u",
              "heatmap_dir": tmp_path / "h", "database": postgres_url, "warm_up": False, "secret_key": None}
    with pytest.raises(ConfigurationError, match="SKINLESION_SECRET_KEY"):
        build_app(config)
    assert build_app(config | {"secret_key": "k" * 64}).test_client().get("/api/health").status_code == 200


class Instance:
    """`python app.py` on a port of its own, with the given database and storage."""

    def __init__(self, env, folder, name):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = folder / f"{name}.log"
        self.env = dict(env, SKINLESION_PORT=str(self.port))
        self.start()

    def start(self):
        self.log = open(self.log_path, "a")
        self.process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=self.env,
                                        stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while time.time() < deadline:
            assert self.process.poll() is None, self.log_path.read_text()[-3000:]
            try:
                urllib.request.urlopen(self.url + "/api/health", timeout=5)
                return
            except OSError:
                time.sleep(0.5)
        raise AssertionError("did not start: " + self.log_path.read_text()[-3000:])

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()

    def get(self, path):
        try:
            with urllib.request.urlopen(self.url + path, timeout=60) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def analyse(self, data, case):
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"case\"\r\n\r\n{case}\r\n"
                f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n"
                f"Content-Type: image/jpeg\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
        request = urllib.request.Request(self.url + "/api/analyze", data=body,
                                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read())


def test_two_instances_share_one_postgresql_and_one_storage(tiny_models, tmp_path, postgres_url):
    """An analysis made on one instance is listed, served and deleted on the other, and the
    analyses survive a restart of both."""
    storage = tmp_path / "shared"
    env = dict(os.environ, SKINLESION_DATABASE=postgres_url, SKINLESION_SECRET_KEY="s" * 64,
               SKINLESION_MODELS_DIR=str(tiny_models), SKINLESION_UPLOAD_DIR=str(storage / "uploads"),
               SKINLESION_HEATMAP_DIR=str(storage / "heatmap"), SKINLESION_WARM_UP="0", SKINLESION_INFERENCE_THREADS="1")
    first, second = Instance(env, tmp_path, "first"), Instance(env, tmp_path, "second")
    try:
        kept = first.analyse(jpeg_bytes(1), "SHARED-1")["id"]
        doomed = first.analyse(jpeg_bytes(2), "SHARED-1")["id"]
        status, page = second.get("/history?case=SHARED-1")
        assert status == 200 and kept.encode() in page and doomed.encode() in page
        assert second.get(f"/analyses/{kept}/contour")[0] == 200  # the file, from the shared storage
        files = list((storage / "heatmap").glob(f"{doomed}_*"))
        assert files
        # A page POST needs the session's CSRF token: delete through the second instance's form.
        import http.cookiejar
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        result = opener.open(f"{second.url}/analyses/{doomed}").read().decode()
        token = result.split('name="csrf_token" value="')[1].split('"')[0]
        opener.open(urllib.request.Request(f"{second.url}/analyses/{doomed}/delete",
                                           data=f"csrf_token={token}".encode()))
        assert first.get(f"/api/analyses/{doomed}")[0] == 404
        assert not any(path.exists() for path in files)
        for instance in (first, second):
            instance.stop()
        for instance in (first, second):
            instance.start()
        assert first.get(f"/api/analyses/{kept}")[0] == 200 and second.get(f"/api/analyses/{kept}")[0] == 200
    finally:
        for instance in (first, second):
            if instance.process.poll() is None:
                instance.stop()


def test_a_long_name_is_a_wrong_login_on_postgresql(tiny_models, tmp_path, postgres_url):
    """Issue 29.5: a 500-character name overflowed the throttle's VARCHAR(400) key: 503."""
    import base64
    from conftest import build_app
    app = build_app({"models_dir": tiny_models, "upload_dir": tmp_path / "u",
                      "heatmap_dir": tmp_path / "h", "database": postgres_url, "warm_up": False,
                      "secret_key": "k" * 64, "host": "0.0.0.0"})
    client = app.test_client()
    name = "n" * 500
    page = client.get("/login")
    token = page.data.decode().split('name="csrf_token" value="')[1].split('"')[0]
    assert client.post("/login", data={"name": name, "password": "x", "csrf_token": token}).status_code == 401
    credentials = base64.b64encode(f"{name}:x".encode()).decode()
    assert client.get("/api/analyses/x", headers={"Authorization": f"Basic {credentials}"}).status_code == 401


def test_work_per_account_counts_exactly_on_both_databases(database):
    """Issue 29.8: ten concurrent requests of one account, in one window, against a limit of 4."""
    from webapp import db
    from webapp.limits import TooMuchWork, take
    engine = db.connect(database)
    barrier, outcomes = threading.Barrier(10), []

    def request():
        barrier.wait()
        try:
            take(engine, "acct-1", "analyses", 1, 4, now=1000.0)
            outcomes.append("counted")
        except TooMuchWork as error:
            outcomes.append(error.retry_after)

    threads = [threading.Thread(target=request) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("counted") == 4 and set(outcomes) - {"counted"} == {60}
    take(engine, "acct-1", "analyses", 1, 4, now=1061.0)  # the next window starts afresh
