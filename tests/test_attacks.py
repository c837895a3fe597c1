"""What a second attempt to break the app found (issue 29): each test failed before its fix."""
import io
import logging

import pytest

from test_security import PASSWORD, basic, make_app
from test_web import jpeg_bytes


@pytest.fixture(scope="module")
def locked_app(tiny_models, tmp_path_factory):
    app = make_app(tiny_models, tmp_path_factory.mktemp("attacks"), LISTEN_HOST="0.0.0.0")
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
