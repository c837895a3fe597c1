"""What a second attempt to break the app found (issue 29): each test failed before its fix."""
import io
import logging

import pytest

from test_security import PASSWORD, basic, make_app
from test_web import jpeg_bytes
from webapp.config import settings_of


@pytest.fixture(scope="module")
def locked_app(tiny_models, tmp_path_factory):
    app = make_app(tiny_models, tmp_path_factory.mktemp("attacks"), host="0.0.0.0")
    result = app.test_cli_runner().invoke(args=["users", "add", "alice"], input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    return app


# --- 1. a forged Host header with accounts on ----------------------------------------------

@pytest.mark.parametrize("path", ["/login", "/", "/history", "/api/analyses/x", "/api/health"])
def test_a_forged_host_is_a_400_with_accounts_on(locked_app, path, caplog):
    with caplog.at_level(logging.INFO):
        response = locked_app.test_client().get(path, headers={"Host": "evil.example"})
    assert response.status_code == 400 and b"SKINLESION_TRUSTED_HOSTS" in response.data
    assert not [r for r in caplog.records if r.exc_info], "no traceback for a forged Host"


# --- 2. the health check: open to a probe, and it sees a full disk --------------------------

def test_health_answers_a_probe_without_credentials_and_says_no_more(locked_app):
    client = locked_app.test_client()
    probe = client.get("/api/health")
    assert probe.status_code == 200 and probe.get_json() == {"status": "ok", "problems": []}
    with_login = client.get("/api/health", headers=basic("alice")).get_json()
    assert with_login["status"] == "ok" and {"3class", "7class"} <= set(with_login["models"])
    assert client.get("/api/health", headers=basic("alice", "wrong password")).status_code == 401
    assert client.get("/api/analyses/x").status_code == 401  # only the health check is open


def test_health_fails_on_a_full_disk(locked_app, monkeypatch):
    import shutil
    from collections import namedtuple
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage(10 * 2**30, 10 * 2**30 - 2**20, 2**20))
    probe = locked_app.test_client().get("/api/health")
    assert probe.status_code == 503 and probe.get_json()["status"] == "failing"
    assert any("disk" in problem and "full" in problem for problem in probe.get_json()["problems"])


# --- 3. slow clients: the shipped nginx site in front of gunicorn --------------------------

def test_stalled_uploads_hold_nginx_not_the_workers(tiny_models):
    """Gunicorn alone (1 worker x 2 threads here) stops answering while two clients stall
    inside their bodies; behind deploy/nginx-lesion-lens.conf it answers throughout, and
    nginx drops the stalled clients after its body timeout (10 s)."""
    import sys
    from conftest import ROOT
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from slow_clients import Gunicorn, Nginx, closed_within, nginx_binary, probe, stall
    if nginx_binary() is None:
        pytest.skip("nginx is not installed (.ci/run installs Debian's nginx-light)")
    server = Gunicorn(1, tiny_models, {"SKINLESION_PROXIES": "1", "SKINLESION_WARM_UP": "0",
                                       "SKINLESION_INFERENCE_THREADS": "1"})
    proxy = Nginx(server.port)
    try:
        held = stall(server.port, 2)
        assert probe(server.url, timeout=4) is None  # the failure the proxy is there for
        for connection in held:
            connection.close()
        stalled = stall(proxy.port, 8)
        for _ in range(3):
            assert probe(proxy.url, timeout=4) is not None
        closed = closed_within(stalled[0], 20)
        assert closed is not None and (closed == b"" or b"408" in closed.split(b"\r\n")[0])
        assert probe(proxy.url, timeout=4) is not None
        for connection in stalled:
            connection.close()
    finally:
        proxy.stop()
        server.stop()


# --- 4. memory per upload is bounded by what the decode costs, not by the file's size --------

def test_no_upload_that_passes_the_limits_adds_more_than_300_mb():
    """Before: a 115 KB 16-bit PNG added 1,358 MB, a 312 KB float TIFF 1,454 MB, an RGBA
    PNG 1,217 MB, an MPO 657 MB (benchmarks/decode_memory.py, 49 MP each)."""
    import sys
    from conftest import ROOT
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from decode_memory import peak_added_mb, worst_case_files
    if not __import__("pathlib").Path("/proc/self/clear_refs").exists():
        pytest.skip("the peak is measured with Linux's /proc/self/clear_refs")
    for name, data in worst_case_files().items():
        added, _, outcome = peak_added_mb(data)
        assert added <= 300, (name, added)
        assert outcome == "(1024, 1024, 3)" or "to decode and shrink" in outcome, (name, outcome)
    added, _, _ = peak_added_mb(worst_case_files()["32-bit float TIFF"], copies=8)
    assert added <= 2 * 300  # two decodes at a time, whatever the number of requests


def test_reading_a_png_header_decodes_no_pixels(monkeypatch):
    """Pillow's PNG reader decoded the whole image to look for EXIF: the header read of the
    upload form (batch pixel limit, original size) ran 8 full decodes at once, outside the
    decode limit (python app.py: +460 MB for uploads that were then refused)."""
    from PIL import ImageFile
    from skinlesion.imageio import image_dimensions
    buffer = io.BytesIO()
    __import__("PIL.Image").Image.new("RGB", (300, 200)).save(buffer, "PNG")

    def no_decoding(self):
        raise AssertionError("pixels decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    assert image_dimensions(buffer.getvalue()) == (300, 200)


def test_a_decode_that_would_take_too_much_memory_is_a_clear_refusal(locked_app):
    import numpy as np
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(np.full((7000, 7000, 4), 200, np.uint8), "RGBA").save(buffer, "PNG")
    response = locked_app.test_client().post("/api/analyze", headers=basic("alice"),
                                              data={"image": (io.BytesIO(buffer.getvalue()), "a.png")})
    assert response.status_code in (400, 413, 422) and "8-bit JPEG or PNG" in response.get_json()["error"]


# --- 5. the login throttle table stays small, whatever the names tried ---------------------

def test_failed_logins_with_huge_names_store_nothing(locked_app):
    from test_security import login
    from webapp import db
    client = locked_app.test_client()
    database = settings_of(locked_app).database
    before = database.stat().st_size
    for index in range(20):
        assert login(client, f"{index}" + "x" * 400_000, "wrong password!").status_code == 401
        assert client.get("/api/analyses/x", headers=basic("y" * 400_000)).status_code == 401
    assert database.stat().st_size - before < 64 * 1024  # was 0.65 -> 16.7 MB
    with locked_app.extensions["skinlesion"].store.engine.connect() as connection:
        keys = [row[0] for row in connection.execute(db.login_throttle.select())]
    assert all(len(key) < 200 for key in keys)


def test_the_throttle_forgets_old_and_excess_pairs(locked_app, monkeypatch):
    import time
    from webapp import auth, db
    users = locked_app.extensions["skinlesion_users"]
    monkeypatch.setattr(auth, "MAX_THROTTLE_ROWS", 5)
    for index in range(12):
        users.begin_attempt(f"name{index}|10.1.1.1")
    with users.engine.begin() as connection:
        assert len(connection.execute(db.login_throttle.select()).all()) <= 5
        connection.execute(db.login_throttle.update().values(last=time.time() - auth.FAILURE_MEMORY_SECONDS - 1))
    users.begin_attempt("fresh|10.1.1.1")
    with users.engine.connect() as connection:
        assert [row.key for row in connection.execute(db.login_throttle.select())] == ["fresh|10.1.1.1"]


# --- 6. passwords a guesser would try first are refused, with the reason --------------------

@pytest.mark.parametrize("name, password, reason", [
    ("dave", "1234567890", "common password"), ("dave", "dave123456", "user name"),
    ("erin", "erinerinerin", "user name"), ("frank", "qwertyuiop", "too easy to guess"),
    ("gina", "short", "at least 10 characters")])
def test_guessable_passwords_are_refused(locked_app, name, password, reason):
    result = locked_app.test_cli_runner().invoke(args=["users", "add", name], input=f"{password}\n{password}\n")
    assert result.exit_code != 0 and reason in result.output
    assert name not in locked_app.extensions["skinlesion_users"].names()


# --- 7. a note over its limit is refused with the limit, never cut or called a file problem --

@pytest.mark.parametrize("size", [2_001, 400_000, 600_000])
def test_a_note_over_its_limit_is_refused_with_the_limit(locked_app, size):
    client = locked_app.test_client()
    before = len(locked_app.extensions["skinlesion"].store.list())
    response = client.post("/api/analyze", headers=basic("alice"),
                           data={"image": (io.BytesIO(jpeg_bytes()), "a.jpg"), "note": "n" * size})
    assert response.status_code in (400, 413) and "2,000" in response.get_json()["error"]
    assert len(locked_app.extensions["skinlesion"].store.list()) == before
    fitting = client.post("/api/analyze", headers=basic("alice"),
                          data={"image": (io.BytesIO(jpeg_bytes()), "a.jpg"), "note": "n" * 2_000})
    assert fitting.status_code == 200 and fitting.get_json()["note"] == "n" * 2_000


def test_the_upload_page_refuses_a_long_case_reference_and_keeps_the_form(locked_app):
    from test_security import login
    from test_web import page_post
    client = locked_app.test_client()
    login(client, "alice")
    response = page_post(client, "/analyze", {"image": (io.BytesIO(jpeg_bytes()), "a.jpg"),
                                              "case": "c" * 101, "note": "kept"})
    assert response.status_code == 400 and b"at most 100" in response.data and b"kept" in response.data


# --- 8. work per account: analyses and PDFs per minute, counted in the shared database -------

def test_analyses_per_account_are_limited_with_retry_after(tiny_models, tmp_path):
    app = make_app(tiny_models, tmp_path, host="0.0.0.0", analyses_per_minute=3, reports_per_minute=2)
    for name in ("alice", "bob"):
        assert app.test_cli_runner().invoke(args=["users", "add", name], input=f"{PASSWORD}\n{PASSWORD}\n").exit_code == 0
    client = app.test_client()

    def analyze(name):
        return client.post("/api/analyze", headers=basic(name), data={"image": (io.BytesIO(jpeg_bytes()), "a.jpg")})

    answers = [analyze("alice") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert 1 <= int(answers[-1].headers["Retry-After"]) <= 60 and "3 analyses" in answers[-1].get_json()["error"]
    assert analyze("bob").status_code == 200  # another account has its own count
    analysis_id = answers[0].get_json()["id"]
    from test_security import login
    login(client, "alice")
    reports = [client.get(f"/analyses/{analysis_id}/report.pdf").status_code for _ in range(3)]
    assert reports[-1] == 429 and 429 not in reports[:2]


def test_the_count_is_shared_by_every_app_on_one_database(tiny_models, tmp_path):
    """Two app instances (two hosts) on one database: one account's count is one count."""
    first = make_app(tiny_models, tmp_path, host="0.0.0.0", analyses_per_minute=2)
    second = make_app(tiny_models, tmp_path, host="0.0.0.0", analyses_per_minute=2)
    assert first.test_cli_runner().invoke(args=["users", "add", "alice"], input=f"{PASSWORD}\n{PASSWORD}\n").exit_code == 0
    statuses = [app.test_client().post("/api/analyze", headers=basic("alice"),
                                       data={"image": (io.BytesIO(jpeg_bytes()), "a.jpg")}).status_code
                for app in (first, second, first)]
    assert statuses == [200, 200, 429]


def test_a_batch_counts_each_image_and_the_workstation_is_not_limited(tiny_models, tmp_path):
    from test_web import page_post
    from test_security import login
    app = make_app(tiny_models, tmp_path / "clinic", host="0.0.0.0", analyses_per_minute=3)
    assert app.test_cli_runner().invoke(args=["users", "add", "alice"], input=f"{PASSWORD}\n{PASSWORD}\n").exit_code == 0
    client = app.test_client()
    login(client, "alice")
    batch = [(io.BytesIO(jpeg_bytes()), f"{i}.jpg") for i in range(4)]
    response = page_post(client, "/analyze", {"image": batch, "note": "kept"})
    assert response.status_code == 429 and b"at most 3" in response.data and b"kept" in response.data
    workstation = make_app(tiny_models, tmp_path / "desk", analyses_per_minute=1).test_client()
    for _ in range(3):
        assert workstation.post("/api/analyze", data={"image": (io.BytesIO(jpeg_bytes()), "a.jpg")}).status_code == 200


# --- 9. a crashed refit cannot disarm the gate ---------------------------------------------

def test_a_classifier_card_without_its_reliability_is_refused(tiny_models, tmp_path):
    import json
    import shutil
    from skinlesion.analysis import Analyzer
    from skinlesion.cards import ModelFileError
    folder = tmp_path / "models"
    shutil.copytree(tiny_models, folder)
    card_file = folder / "classifier_3class.json"
    card = json.loads(card_file.read_text())
    card.pop("reliability")  # what the old fit_reliability left behind when it crashed
    card_file.write_text(json.dumps(card))
    with pytest.raises(ModelFileError, match="'reliability'.*fit_reliability"):
        Analyzer(folder, tasks=("3class",))
    Analyzer(folder, tasks=("7class",))  # the other classifier's card is whole


def test_a_refit_that_crashes_leaves_the_card_as_it_was(tiny_models, tmp_path, monkeypatch):
    import shutil
    from training import fit_reliability
    folder = tmp_path / "models"
    shutil.copytree(tiny_models, folder)
    card_file = folder / "classifier_7class.json"
    card_file.write_text(card_file.read_text().replace('"task"', '"split": {"val_fraction": 0.3, "seed": 1}, "task"', 1))
    before = card_file.read_bytes()

    def crash(*args, **kwargs):
        raise RuntimeError("killed mid-fit")

    monkeypatch.setattr("training.datasets.split_sources", crash)
    with pytest.raises(RuntimeError, match="killed mid-fit"):
        fit_reliability.main(["--model", str(folder / "classifier_7class.h5"), "--data", str(tmp_path)])
    assert card_file.read_bytes() == before
    assert not list(folder.glob(".*.tmp"))


def test_card_writes_are_atomic(tiny_models, tmp_path, monkeypatch):
    import json
    import os
    import shutil
    from skinlesion.cards import read_card, save_card
    shutil.copytree(tiny_models, tmp_path / "m")
    model = tmp_path / "m" / "unet.h5"
    before = read_card(model)

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        save_card(model, {**before, "name": "half-written"})
    assert read_card(model) == before and not list(model.parent.glob(".*.tmp"))
    monkeypatch.undo()
    save_card(model, {**before, "name": "new"})
    assert json.loads(model.with_suffix(".json").read_text())["name"] == "new"
