"""Accounts for deployments beyond loopback: hashed passwords, login, per-user analyses.

Login is required when REQUIRE_LOGIN is "always", or "auto" (the default) and the server
listens on anything but loopback. Pages use a session login; the JSON API takes HTTP
Basic credentials. Failed logins are counted per user name and per client address in
the database (shared by all workers) and refused for a while after too many.
"""
import sqlite3
import time

from flask import (Blueprint, current_app, g, jsonify, redirect, render_template, request, session,
                   url_for)
from werkzeug.security import check_password_hash, generate_password_hash

blueprint = Blueprint("auth", __name__)
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
MAX_FAILURES = {"user": 5, "addr": 20}  # per user name; per client address (a clinic may share one)
FAILURE_WINDOW_SECONDS = 15 * 60

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY, password_hash TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS login_failures (key TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS login_failures_key ON login_failures (key, at);
"""


def login_required_for(host, setting):
    if setting == "always":
        return True
    if setting == "never":
        return False
    return (host or "127.0.0.1").split(":")[0] not in LOOPBACK and host not in LOOPBACK


class Users:
    def __init__(self, path):
        self.path = path
        with self._connect() as connection:
            connection.executescript(SCHEMA)

    def _connect(self):
        return sqlite3.connect(self.path, timeout=30)

    def add(self, name, password):
        name = name.strip()
        if not name or len(name) > 64:
            raise ValueError("A user name of 1 to 64 characters is needed.")
        if len(password) < 10:
            raise ValueError("The password needs at least 10 characters.")
        with self._connect() as connection:
            try:
                connection.execute("INSERT INTO users VALUES (?, ?, datetime('now'))",
                                   (name, generate_password_hash(password)))
            except sqlite3.IntegrityError:
                raise ValueError(f"User {name!r} already exists.") from None

    def remove(self, name):
        with self._connect() as connection:
            return connection.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount

    def names(self):
        with self._connect() as connection:
            return [row[0] for row in connection.execute("SELECT name FROM users ORDER BY name")]

    def verify(self, name, password):
        with self._connect() as connection:
            row = connection.execute("SELECT password_hash FROM users WHERE name = ?", (name,)).fetchone()
        # Hash even for unknown users, so timing does not reveal which names exist.
        stored = row[0] if row else generate_password_hash("unknown-user-placeholder")
        return check_password_hash(stored, password) and row is not None

    def blocked(self, *keys):
        since = time.time() - FAILURE_WINDOW_SECONDS
        with self._connect() as connection:
            return any(connection.execute("SELECT COUNT(*) FROM login_failures WHERE key = ? AND at > ?",
                                          (key, since)).fetchone()[0] >= MAX_FAILURES[key.split(":")[0]]
                       for key in keys)

    def record_failure(self, *keys):
        with self._connect() as connection:
            connection.executemany("INSERT INTO login_failures VALUES (?, ?)", [(k, time.time()) for k in keys])
            connection.execute("DELETE FROM login_failures WHERE at < ?", (time.time() - FAILURE_WINDOW_SECONDS,))

    def clear_failures(self, *keys):
        with self._connect() as connection:
            connection.executemany("DELETE FROM login_failures WHERE key = ?", [(k,) for k in keys])


def users():
    return current_app.extensions["skinlesion_users"]


def current_user():
    """The logged-in user's name, or None when accounts are off (single-user workstation)."""
    return g.get("user")


def _failure_keys(name):
    return (f"user:{name}", f"addr:{request.remote_addr}")


def _authenticate(name, password):
    """True/False for the credentials; None when refused for too many failures."""
    keys = _failure_keys(name)
    if users().blocked(*keys):
        return None
    if users().verify(name, password):
        users().clear_failures(f"user:{name}")
        return True
    users().record_failure(*keys)
    return False


def enforce_login():
    g.user = None
    if not current_app.config["LOGIN_REQUIRED"]:
        return None
    if request.endpoint in ("auth.login", "static"):
        return None
    if request.blueprint == "api":
        credentials = request.authorization
        if credentials and credentials.type == "basic":
            verdict = _authenticate(credentials.username or "", credentials.password or "")
            if verdict is None:
                return jsonify({"error": "Too many failed logins; try again later."}), 429
            if verdict:
                g.user = credentials.username
                return None
        response = jsonify({"error": "Login required (HTTP Basic credentials)."})
        response.headers["WWW-Authenticate"] = 'Basic realm="skinlesion"'
        return response, 401
    name = session.get("user")
    if name and name in users().names():
        g.user = name
        return None
    return redirect(url_for("auth.login", next=request.full_path if request.method == "GET" else None))


@blueprint.route("/login", methods=["GET", "POST"])
def login():
    error, status = None, 200
    if request.method == "POST":
        name = request.form.get("name", "").strip()
        verdict = _authenticate(name, request.form.get("password", ""))
        if verdict:
            session.clear()
            session["user"] = name
            target = request.args.get("next") or ""
            # Only local paths: an open redirect would help phishing.
            return redirect(target if target.startswith("/") and not target.startswith("//")
                            else url_for("pages.index"), code=303)
        error, status = (("Too many failed logins; wait 15 minutes and try again.", 429) if verdict is None
                         else ("Wrong user name or password.", 401))
    return render_template("login.html", error=error), status


@blueprint.post("/logout")
def logout():
    session.clear()
    return redirect(url_for("auth.login"), code=303)


def init_app(app):
    app.extensions["skinlesion_users"] = Users(app.config["DATABASE"])
    app.config["LOGIN_REQUIRED"] = login_required_for(app.config.get("LISTEN_HOST"),
                                                      app.config.get("REQUIRE_LOGIN", "auto"))
    app.before_request(enforce_login)
    app.register_blueprint(blueprint)
    app.jinja_env.globals["current_user"] = current_user
