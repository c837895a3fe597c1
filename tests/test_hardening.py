"""Issue 12: what an attempt to break the app found, one test (or more) per item.

Item 3 (the start-up sweep) is tested in test_web.py beside the rest of the file handling.
"""
import base64
import io
import shutil
import stat
import threading

import pytest
from PIL import Image

from test_web import jpeg_bytes, page_post, post_api
from webapp.config import settings_of

PASSWORD = "correct horse battery"


def make_app(tiny_models, folder, **extra):
    from conftest import build_app
    config = {"workstation": True, "models_dir": tiny_models,
              "upload_dir": folder / "uploads", "heatmap_dir": folder / "heatmap",
              "database": folder / "db.sqlite3", "warm_up": False}
    return build_app(config | extra)


def add_users(app, *names):
    for name in names:
        result = app.test_cli_runner().invoke(args=["users", "add", name], input=f"{PASSWORD}\n{PASSWORD}\n")
        assert result.exit_code == 0, result.output


def locked(tiny_models, folder, **extra):
    """A server as gunicorn runs it: not the workstation, so accounts are on."""
    app = make_app(tiny_models, folder, workstation=False, **extra)
    add_users(app, "alice", "bob")
    return app


def basic(name, password=PASSWORD):
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()}


def login(client, name, password=PASSWORD, next_url=None):
    url = "/login" if next_url is None else "/login?next=" + next_url
    return page_post(client, url, {"name": name, "password": password})


def png_bytes(width, height):
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (180, 120, 90)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def open_app(tiny_models, tmp_path_factory):
    return make_app(tiny_models, tmp_path_factory.mktemp("open"))


@pytest.fixture(scope="module")
def locked_app(tiny_models, tmp_path_factory):
    return locked(tiny_models, tmp_path_factory.mktemp("locked"))


# --- 1. bounded work for odd shapes; an encoder failure is not "storage full" ---------

@pytest.mark.parametrize("width, height, words", [(100_000, 32, "strip"), (500, 40, "strip"),
                                                  (12_500, 2_000, "no dermatoscope")])
def test_strips_and_giant_sides_are_refused_before_decoding(open_app, width, height, words):
    response = post_api(open_app.test_client(), png_bytes(width, height), name="strip.png")
    assert response.status_code == 400 and words in response.get_json()["error"]


def test_an_encoder_failure_is_not_reported_as_full_storage(open_app, monkeypatch):
    from skinlesion import overlays
    monkeypatch.setattr(overlays.cv2, "imencode", lambda *args: (False, None))
    before = len(open_app.extensions["skinlesion"].store.list())
    response = post_api(open_app.test_client(), jpeg_bytes())
    assert response.status_code == 422
    assert "storage" not in response.get_json()["error"] and "could not be made" in response.get_json()["error"]
    assert len(open_app.extensions["skinlesion"].store.list()) == before


def test_the_asymmetry_grid_is_bounded_by_the_analysis_size():
    from skinlesion.imageio import load_image
    data = png_bytes(6_000, 4_000)
    image = load_image(data, max_side=2048)
    assert image.shape == (1365, 2048, 3)


# --- 2 and 13. redirects after login ---------------------------------------------------

@pytest.mark.parametrize("next_url", ["%2F%09%2Fevil.example", "%2F%5Cevil.example", "https://evil.example/",
                                      "%2F%0D%0ASet-Cookie:x=1", "//evil.example", "%09//evil.example",
                                      "javascript:alert(1)"])
def test_login_never_redirects_off_site_nor_fails(locked_app, next_url):
    response = login(locked_app.test_client(), "alice", next_url=next_url)
    assert response.status_code == 303
    location = response.headers["Location"]
    assert "evil" not in location and "\n" not in location and "javascript" not in location
    assert location.startswith("/")


def test_login_keeps_a_local_next(locked_app):
    response = login(locked_app.test_client(), "alice", next_url="%2Fhistory%3Fcase%3DA1")
    assert response.headers["Location"] == "/history?case=A1"


# --- 4. health and a worker that starts after a file went bad ----------------------------

def copied_models(tiny_models, folder):
    models = folder / "models"
    shutil.copytree(tiny_models, models)
    return models


def test_health_fails_when_a_model_file_or_the_database_goes_bad(tiny_models, tmp_path):
    models = copied_models(tiny_models, tmp_path)
    app = make_app(models, tmp_path, models_dir=models)
    client = app.test_client()
    assert client.get("/api/health").status_code == 200
    (models / "classifier_3class.h5").unlink()
    body = client.get("/api/health")
    assert body.status_code == 503 and "classifier_3class.h5" in " ".join(body.get_json()["problems"])
    shutil.copy(tiny_models / "classifier_3class.h5", models / "classifier_3class.h5")
    assert client.get("/api/health").status_code == 200
    (tmp_path / "db.sqlite3").write_bytes(b"this is not a database" * 100)
    body = client.get("/api/health")
    assert body.status_code == 503 and "database" in body.get_json()["problems"][0]


def test_a_worker_starting_without_a_model_serves_what_it_can(tiny_models, tmp_path, caplog):
    models = copied_models(tiny_models, tmp_path)
    first = make_app(models, tmp_path, models_dir=models)
    kept = post_api(first.test_client(), jpeg_bytes()).get_json()["id"]
    (models / "unet.h5").unlink()
    with pytest.raises(Exception, match="unet.h5"):  # python app.py: stop with the reason
        make_app(models, tmp_path, models_dir=models)
    app = make_app(models, tmp_path, models_dir=models, boot_failure="degrade")  # gunicorn
    assert any("WITHOUT MODELS" in r.message and r.levelname == "ERROR" for r in caplog.records)
    client = app.test_client()
    assert client.get(f"/analyses/{kept}").status_code == 200  # what is stored is still shown
    assert client.get("/history").status_code == 200
    refused = post_api(client, jpeg_bytes(1))
    assert refused.status_code == 503 and "paused" in refused.get_json()["error"]
    page = page_post(client, "/analyze", {"image": (io.BytesIO(jpeg_bytes(1)), "a.jpg")})
    assert page.status_code == 503
    health = client.get("/api/health")
    assert health.status_code == 503 and "unet.h5" in " ".join(health.get_json()["problems"])


def test_a_worker_starting_with_a_broken_database_answers_503(tiny_models, tmp_path):
    from sqlalchemy.exc import DatabaseError
    (tmp_path / "db.sqlite3").write_bytes(b"this is not a database" * 100)
    with pytest.raises(DatabaseError):
        make_app(tiny_models, tmp_path)
    client = make_app(tiny_models, tmp_path, boot_failure="degrade").test_client()
    assert client.get("/").status_code == 503 and b"database" in client.get("/").data
    health = client.get("/api/health")
    assert health.status_code == 503 and health.get_json()["status"] == "failing"


# --- 5. hosts, other sites, and who needs a login ----------------------------------------

def test_unknown_host_names_are_refused(open_app):
    client = open_app.test_client()
    assert client.get("/", headers={"Host": "localhost:8083"}).status_code == 200
    assert client.get("/", headers={"Host": "127.0.0.1:8083"}).status_code == 200
    for host in ("evil.example", "rebind.evil.example:8083"):
        response = client.get("/history", headers={"Host": host})
        assert response.status_code == 400 and b"SKINLESION_TRUSTED_HOSTS" in response.data


def test_a_configured_host_name_is_answered(tiny_models, tmp_path):
    app = make_app(tiny_models, tmp_path, trusted_hosts=["lesions.clinic.example"])
    assert app.test_client().get("/", headers={"Host": "lesions.clinic.example"}).status_code == 200


@pytest.mark.parametrize("headers", [{"Origin": "http://evil.example"}, {"Origin": "null"},
                                     {"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"},
                                     {"Sec-Fetch-Site": "same-site", "Origin": "http://localhost:3000"}])
def test_cross_origin_changes_are_refused(open_app, headers):
    client = open_app.test_client()
    before = len(open_app.extensions["skinlesion"].store.list())
    response = client.post("/api/analyze", data={"image": (io.BytesIO(jpeg_bytes()), "a.jpg")}, headers=headers)
    assert response.status_code == 403 and "another web site" in response.get_json()["error"]
    page = page_post(client, "/analyze", {"image": (io.BytesIO(jpeg_bytes()), "a.jpg")}, headers=headers)
    assert page.status_code == 403
    assert len(open_app.extensions["skinlesion"].store.list()) == before


@pytest.mark.parametrize("headers", [{}, {"Sec-Fetch-Site": "same-origin"}, {"Origin": "http://localhost"},
                                     {"Sec-Fetch-Site": "none"}])
def test_same_origin_and_non_browser_requests_pass(open_app, headers):
    response = open_app.test_client().post("/api/analyze", data={"image": (io.BytesIO(jpeg_bytes()), "a.jpg")},
                                           headers=headers)
    assert response.status_code == 200


def test_only_the_loopback_workstation_runs_without_accounts(tiny_models, tmp_path):
    from skinlesion.settings import Settings
    assert not Settings(require_login="auto", workstation=True, host="127.0.0.1").login_required
    assert Settings(require_login="auto", workstation=True, host="0.0.0.0").login_required
    assert Settings(require_login="auto", workstation=False).login_required  # gunicorn, flask run, ...
    assert not Settings(require_login="never", workstation=False).login_required  # only when said
    assert settings_of(make_app(tiny_models, tmp_path, workstation=False)).login_required


def test_gunicorn_config_does_not_guess_from_the_bind_address(monkeypatch):
    from skinlesion.settings import Settings
    monkeypatch.setenv("SKINLESION_BIND", "127.0.0.1:8083")
    assert Settings.from_environment().for_gunicorn().login_required


# --- 6. CSV cells that a spreadsheet would run -------------------------------------------

def test_safe_cell_neutralises_formulas_but_not_numbers():
    from skinlesion.export import safe_cell
    for text in ("=HYPERLINK(\"http://x\",\"y\")", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\tx", "\rx"):
        assert safe_cell(text) == "'" + text
    for kept in (-0.25, "-0.25", "-1e-05", 3, "plain", ""):
        assert safe_cell(kept) == kept


def test_batch_csv_has_no_formulas(open_app):
    client = open_app.test_client()
    first = post_api(client, jpeg_bytes(), name="+cmd.jpg", case='=HYPERLINK("http://evil.example","x")')
    second = post_api(client, jpeg_bytes(1), name="@lesion.jpg")
    ids = ",".join(r.get_json()["id"] for r in (first, second))
    rows = list(__import__("csv").reader(io.StringIO(client.get(f"/batch.csv?ids={ids}").data.decode())))
    cells = [cell for row in rows[1:] for cell in row]
    assert not any(cell.startswith(("=", "+", "@")) for cell in cells)
    assert "'+cmd.jpg" in cells and "'@lesion.jpg" in cells and any(c.startswith("'=HYPERLINK") for c in cells)


# --- 7. work per request -------------------------------------------------------------------

def test_large_images_are_analysed_at_a_bounded_size_and_kept_whole(open_app):
    from skinlesion.analysis import ANALYSIS_MAX_SIDE
    data = jpeg_bytes(size=(2_400, 3_000))
    body = post_api(open_app.test_client(), data).get_json()
    record = open_app.extensions["skinlesion"].store.get(body["id"])
    assert max(record["summary"]["image_size"].values()) == ANALYSIS_MAX_SIDE
    assert record["summary"]["original_size"] == {"width": 3_000, "height": 2_400}
    upload = settings_of(open_app).upload_dir / record["files"]["upload"]
    assert upload.read_bytes() == data  # the original file is kept as sent
    with Image.open(settings_of(open_app).heatmap_dir / record["files"]["mask"]) as mask:
        assert max(mask.size) == ANALYSIS_MAX_SIDE


def test_a_batch_holding_too_many_pixels_is_refused(tiny_models, tmp_path):
    app = make_app(tiny_models, tmp_path, max_batch_megapixels=1)
    files = [(io.BytesIO(jpeg_bytes(i, size=(600, 800))), f"{i}.jpg") for i in range(3)]
    response = page_post(app.test_client(), "/analyze", {"image": files})
    assert response.status_code == 413 and b"megapixels" in response.data
    assert app.extensions["skinlesion"].store.list() == []


# --- 8. sessions ------------------------------------------------------------------------------

def session_cookie(response):
    return next(v for v in response.headers.getlist("Set-Cookie") if v.startswith("session="))


def test_session_cookie_flags(tiny_models, tmp_path):
    plain = locked(tiny_models, tmp_path / "a")
    cookie = session_cookie(login(plain.test_client(), "alice"))
    assert "SameSite=Lax" in cookie and "HttpOnly" in cookie and "Secure" not in cookie
    secure = locked(tiny_models, tmp_path / "b", secure_cookies=True)
    assert "Secure" in session_cookie(login(secure.test_client(), "alice"))


def test_logout_ends_a_copied_session(locked_app):
    client, thief = locked_app.test_client(), locked_app.test_client()
    login(client, "bob")
    cookie = client.get_cookie("session").value
    thief.set_cookie("session", cookie)
    assert thief.get("/history").status_code == 200
    page_post(client, "/logout")
    assert thief.get("/history").status_code == 302  # the copy died with the logout


def test_a_name_created_again_is_a_new_account(tiny_models, tmp_path):
    app = locked(tiny_models, tmp_path)
    client = app.test_client()
    login(client, "alice")
    response = page_post(client, "/analyze", {"image": (io.BytesIO(jpeg_bytes()), "a.jpg"), "case": "OLD"})
    old_id = response.headers["Location"].rsplit("/", 1)[1]
    runner = app.test_cli_runner()
    assert runner.invoke(args=["users", "remove", "alice"]).exit_code == 0
    add_users(app, "alice")
    assert client.get("/history").status_code == 302  # the old cookie does not carry over
    newcomer = app.test_client()
    login(newcomer, "alice")
    assert newcomer.get(f"/analyses/{old_id}").status_code == 404
    assert old_id not in newcomer.get("/history").data.decode()
    assert app.extensions["skinlesion"].store.get(old_id) is not None  # nothing stored is lost


# --- 9. login throttling ------------------------------------------------------------------------

def test_waits_grow_after_repeated_failures():
    from webapp.auth import MAX_WAIT_SECONDS, wait_after
    waits = [wait_after(n) for n in range(4, 12)]
    assert waits[0] == 0 and waits[1] > 0 and all(b > a for a, b in zip(waits[1:6], waits[2:7]))
    assert waits[-1] <= MAX_WAIT_SECONDS


def test_concurrent_guesses_cannot_pass_the_limit(tiny_models, tmp_path, monkeypatch):
    from webapp.auth import FREE_ATTEMPTS, Users
    app = locked(tiny_models, tmp_path)
    checked = []
    original = Users.verify

    def counting_verify(self, name, password):
        checked.append(name)
        return original(self, name, password)

    monkeypatch.setattr(Users, "verify", counting_verify)
    barrier = threading.Barrier(8)

    def guess():
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = "10.9.9.9"
        barrier.wait()
        client.get("/api/health", headers=basic("bob", "wrong guess"))

    threads = [threading.Thread(target=guess) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(checked) == FREE_ATTEMPTS


# --- 10. unknown and known names cost the same ------------------------------------------------

def test_unknown_names_cost_one_hash_check_like_known_ones(locked_app, monkeypatch):
    import webapp.auth as auth
    users = locked_app.extensions["skinlesion_users"]
    users.verify("nobody", "x")  # the placeholder hash is made once per process
    calls = {"generate": 0, "check": 0}
    generate, check = auth.generate_password_hash, auth.check_password_hash

    def counted(kind, function):
        def wrapper(*args, **kwargs):
            calls[kind] += 1
            return function(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(auth, "generate_password_hash", counted("generate", generate))
    monkeypatch.setattr(auth, "check_password_hash", counted("check", check))
    users.verify("alice", "wrong password")
    known = dict(calls)
    calls.update(generate=0, check=0)
    users.verify("nobody-at-all", "wrong password")
    assert calls == known == {"generate": 0, "check": 1}


# --- 11 and 12. the API's image URLs -----------------------------------------------------------

def test_api_image_urls_open_with_the_api_credentials(locked_app):
    client = locked_app.test_client()
    body = client.post("/api/analyze", data={"image": (io.BytesIO(jpeg_bytes()), "a.jpg")},
                       headers=basic("alice")).get_json()
    path = body["images"]["contour"].split("localhost", 1)[1]
    assert client.get(path, headers=basic("alice")).status_code == 200
    assert client.get(path, headers=basic("bob")).status_code == 404  # still only its owner
    assert client.get(path).status_code == 302  # no credentials: the login page


def test_api_urls_use_the_public_url(tiny_models, tmp_path):
    app = make_app(tiny_models, tmp_path, public_url="https://lesions.clinic.example")
    body = post_api(app.test_client(), jpeg_bytes()).get_json()
    assert body["report_url"].startswith("https://lesions.clinic.example/analyses/")
    assert all(url.startswith("https://lesions.clinic.example/") for url in body["images"].values() if url)
    forged = app.test_client().post("/api/analyze", data={"image": (io.BytesIO(jpeg_bytes()), "a.jpg")},
                                    headers={"Host": "evil.example"})
    assert forged.status_code == 400


# --- 13. clear answers -------------------------------------------------------------------------

def test_a_full_database_disk_at_login_is_a_clear_503(locked_app, monkeypatch):
    from webapp.auth import Users

    def full(*args, **kwargs):
        from sqlalchemy.exc import OperationalError
        raise OperationalError("INSERT INTO login_throttle", {}, Exception("database or disk is full"))

    monkeypatch.setattr(Users, "begin_attempt", full)
    response = login(locked_app.test_client(), "alice", "wrong password")
    assert response.status_code == 503 and b"disk may be full" in response.data
    api = locked_app.test_client().get("/api/health", headers=basic("alice"))
    assert api.status_code == 503 and "database" in api.get_json()["error"]


def test_too_many_form_fields_is_not_called_too_large(tiny_models, tmp_path):
    app = make_app(tiny_models, tmp_path)
    app.config["MAX_FORM_PARTS"] = 10  # Flask's own limit
    fields = {f"field{i}": "x" for i in range(30)}
    response = app.test_client().post("/api/analyze", data=fields | {"image": (io.BytesIO(jpeg_bytes()), "a.jpg")})
    assert response.status_code == 413 and "too many fields" in response.get_json()["error"]


def test_the_database_file_is_private(tiny_models, tmp_path):
    make_app(tiny_models, tmp_path)
    assert stat.S_IMODE((tmp_path / "db.sqlite3").stat().st_mode) == 0o600


def test_gunicorn_keeps_serving_when_a_recycled_worker_finds_a_model_gone(tiny_models, tmp_path):
    """The real thing: gunicorn, a worker recycled after a model file was deleted. Before,
    the master halted ("Worker failed to boot") and took the healthy server down."""
    import json
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request
    from conftest import ROOT
    models = copied_models(tiny_models, tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, SKINLESION_BIND=f"127.0.0.1:{port}", SKINLESION_WORKERS="1",
               SKINLESION_MODELS_DIR=str(models), SKINLESION_DATABASE=str(tmp_path / "db.sqlite3"),
               SKINLESION_UPLOAD_DIR=str(tmp_path / "u"), SKINLESION_HEATMAP_DIR=str(tmp_path / "h"),
               SKINLESION_MAX_REQUESTS="2", SKINLESION_MAX_REQUESTS_JITTER="0",
               SKINLESION_REQUIRE_LOGIN="never", SKINLESION_WARM_UP="0", SKINLESION_INFERENCE_THREADS="1")
    log = open(tmp_path / "gunicorn.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "app:create_app()"],
                              cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def health(timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert server.poll() is None, (tmp_path / "gunicorn.log").read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=10) as response:
                    return response.status, json.loads(response.read())
            except urllib.error.HTTPError as error:
                return error.code, json.loads(error.read())
            except OSError:
                time.sleep(0.5)
        raise AssertionError("no answer")

    try:
        assert health()[0] == 200
        (models / "classifier_3class.h5").unlink()
        status, body = health()  # the second request: the worker recycles after it
        assert status == 503 and "classifier_3class.h5" in " ".join(body["problems"])
        deadline = time.time() + 120
        while "WITHOUT MODELS" not in (tmp_path / "gunicorn.log").read_text() and time.time() < deadline:
            time.sleep(0.5)  # the new worker boots
        status, body = health()  # answered by the new, degraded worker
        assert status == 503 and "started without models" in " ".join(body["problems"])
        time.sleep(1)
        assert server.poll() is None  # the master did not halt
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    text = (tmp_path / "gunicorn.log").read_text()
    assert "Worker failed to boot" not in text and "WITHOUT MODELS" in text
