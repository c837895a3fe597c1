"""CSRF, security headers, accounts (login, ownership, rate limit), retention, secret key."""
import base64
import io
from datetime import datetime, timedelta, timezone

import pytest

from test_web import jpeg_bytes, page_post, post_api
from webapp.config import settings_of

PASSWORD = "correct horse battery"


def make_app(tiny_models, folder, **extra):
    from conftest import build_app
    config = {"workstation": True, "models_dir": tiny_models, "upload_dir": folder / "uploads",
              "heatmap_dir": folder / "heatmap", "database": folder / "db.sqlite3", "warm_up": False}
    return build_app(config | extra)


@pytest.fixture(scope="module")
def open_app(tiny_models, tmp_path_factory):
    return make_app(tiny_models, tmp_path_factory.mktemp("open"))


@pytest.fixture(scope="module")
def locked_app(tiny_models, tmp_path_factory):
    """A deployment listening on all interfaces: accounts are required."""
    app = make_app(tiny_models, tmp_path_factory.mktemp("locked"), host="0.0.0.0")
    runner = app.test_cli_runner()
    for name in ("alice", "bob", "carol"):
        result = runner.invoke(args=["users", "add", name], input=f"{PASSWORD}\n{PASSWORD}\n")
        assert result.exit_code == 0, result.output
    return app


def basic(name, password=PASSWORD):
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()}


def login(client, name, password=PASSWORD):
    return page_post(client, "/login", {"name": name, "password": password})


def test_forms_without_csrf_token_are_refused(open_app):
    client = open_app.test_client()
    analysis_id = post_api(client, jpeg_bytes()).get_json()["id"]
    response = client.post(f"/analyses/{analysis_id}/delete")
    assert response.status_code == 400 and b"expired" in response.data
    assert client.get(f"/api/analyses/{analysis_id}").status_code == 200  # nothing was lost
    forged = client.post("/analyze", data={"image": (io.BytesIO(jpeg_bytes()), "a.jpg"), "csrf_token": "guess"})
    assert forged.status_code == 400


def test_every_form_carries_the_token(open_app):
    client = open_app.test_client()
    analysis_id = post_api(client, jpeg_bytes()).get_json()["id"]
    for url in ("/", f"/analyses/{analysis_id}"):
        html = client.get(url).data.decode()
        assert html.count("<form") > 0
        post_forms = html.count('method="post"')
        assert html.count('name="csrf_token"') >= post_forms > 0


def test_security_headers(open_app):
    client = open_app.test_client()
    for response in (client.get("/"), client.get("/api/health"), client.get("/nope")):
        policy = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert "frame-ancestors 'none'" in policy
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "no-referrer"


def test_no_inline_script_or_style_in_pages(open_app):
    client = open_app.test_client()
    analysis_id = post_api(client, jpeg_bytes(), case="X").get_json()["id"]
    for url in ("/", f"/analyses/{analysis_id}", "/history", f"/compare?a={analysis_id}&b={analysis_id}"):
        html = client.get(url).data.decode()
        assert "<script>" not in html and " style=" not in html and "onclick" not in html, url


def test_secret_key_is_generated_once_and_kept(tiny_models, tmp_path):
    first = make_app(tiny_models, tmp_path).config["SECRET_KEY"]
    assert len(first) >= 32 and (tmp_path / "secret_key").is_file()
    assert make_app(tiny_models, tmp_path).config["SECRET_KEY"] == first


def test_loopback_needs_no_login_but_other_hosts_do(open_app, locked_app):
    assert not settings_of(open_app).login_required
    assert settings_of(locked_app).login_required
    client = locked_app.test_client()
    assert client.get("/").status_code == 302 and "/login" in client.get("/").headers["Location"]
    assert client.get("/history").status_code == 302
    assert client.get("/api/analyses/x").status_code == 401
    assert post_api(client, jpeg_bytes()).status_code == 401
    assert "models" not in client.get("/api/health").get_json()  # open to probes, says only ok or not (issue 29)


def test_each_analysis_belongs_to_its_user(locked_app):
    alice, bob = locked_app.test_client(), locked_app.test_client()
    assert login(alice, "alice").status_code == 303
    assert login(bob, "bob").status_code == 303
    response = page_post(alice, "/analyze", {"image": (io.BytesIO(jpeg_bytes()), "a.jpg"), "case": "SHARED"})
    analysis_id = response.headers["Location"].rsplit("/", 1)[1]
    assert alice.get(f"/analyses/{analysis_id}").status_code == 200
    assert bob.get(f"/analyses/{analysis_id}").status_code == 404
    assert bob.get(f"/analyses/{analysis_id}/original").status_code == 404
    assert analysis_id not in bob.get("/history?case=SHARED").data.decode()
    assert page_post(bob, f"/analyses/{analysis_id}/delete").status_code == 404
    api = locked_app.test_client()
    assert api.get(f"/api/analyses/{analysis_id}", headers=basic("bob")).status_code == 404
    assert api.get(f"/api/analyses/{analysis_id}", headers=basic("alice")).status_code == 200


def test_login_is_rate_limited(locked_app):
    client = locked_app.test_client()
    client.environ_base["REMOTE_ADDR"] = "10.0.0.5"
    for _ in range(5):
        assert login(client, "carol", "wrong password!").status_code == 401
    assert login(client, "carol").status_code == 429  # even the right password, for a while
    assert login(client, "alice").status_code == 303  # other users from that address still may
    api = locked_app.test_client()
    api.environ_base["REMOTE_ADDR"] = "10.0.0.5"
    assert api.get("/api/health", headers=basic("carol")).status_code == 429  # the API shares the count
    # Issue 12.9: guesses from one address do not lock the account for everyone else.
    assert locked_app.test_client().get("/api/health", headers=basic("carol")).status_code == 200


def test_users_cli(locked_app):
    runner = locked_app.test_cli_runner()
    assert "alice" in runner.invoke(args=["users", "list"]).output
    short = runner.invoke(args=["users", "add", "dave"], input="short\nshort\n")
    assert short.exit_code != 0 and "10 characters" in short.output
    assert runner.invoke(args=["users", "add", "erin"], input=f"{PASSWORD}\n{PASSWORD}\n").exit_code == 0
    assert runner.invoke(args=["users", "remove", "erin"]).exit_code == 0
    assert "erin" not in runner.invoke(args=["users", "list"]).output
    assert runner.invoke(args=["users", "remove", "erin"]).exit_code != 0


def test_open_redirect_after_login_is_refused(locked_app):
    client = locked_app.test_client()
    with client.session_transaction() as session:
        session["csrf_token"] = "t"
    response = client.post("/login?next=//evil.example/x", data={"name": "alice", "password": PASSWORD,
                                                                 "csrf_token": "t"})
    assert response.status_code == 303 and "evil" not in response.headers["Location"]


def test_retention_purge_removes_only_old_analyses(tiny_models, tmp_path):
    from webapp.cli import purge_older_than
    app = make_app(tiny_models, tmp_path)
    client = app.test_client()
    old, young = (post_api(client, jpeg_bytes(i)).get_json()["id"] for i in range(2))
    engine = app.extensions["skinlesion"]
    old_files = engine.store.get(old)["files"]
    later = datetime.now(timezone.utc) + timedelta(days=10)
    from webapp import db
    with engine.store.engine.begin() as connection:  # age one analysis by 40 days
        connection.execute(db.analyses.update().where(db.analyses.c.id == old)
                           .values(created=(later - timedelta(days=40)).isoformat(timespec="seconds")))
    assert purge_older_than(engine, 30, now=later) == 1
    assert engine.store.get(old) is None and engine.store.get(young) is not None
    assert not any((tmp_path / "heatmap" / name).exists() for kind, name in old_files.items() if kind != "upload")
    result = app.test_cli_runner().invoke(args=["purge", "--days", "30"])
    assert result.exit_code == 0 and "Removed 0" in result.output
