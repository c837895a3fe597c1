"""Accounts: hashed passwords, login, per-account analyses, login throttling.

Whether accounts are needed is one setting (`Settings.login_required`): only `python
app.py` listening on loopback is a single-user workstation; any other server (gunicorn,
`flask run`, another WSGI server) needs them unless SKINLESION_REQUIRE_LOGIN=never says
otherwise. Pages use a session login; the JSON API (and the image URLs it returns) take
HTTP Basic credentials.

Each account has a random id, which owns its analyses and is written into its sessions,
and a session version, raised at logout: a copied cookie dies with the logout, and a
name removed and created again is a new account that sees nothing of the old one.

Failed logins are throttled per (name, client address), in the database all workers and
hosts share; an attempt is counted before the password is checked, in one statement, so
concurrent guesses cannot slip past the count.
"""
import functools
import logging
import secrets
import time
from datetime import datetime, timezone
from urllib.parse import urlsplit

from sqlalchemy import case, delete, func, or_, select, update

from flask import (Blueprint, current_app, g, jsonify, redirect, render_template, request, session,
                   url_for)
from werkzeug.security import check_password_hash, generate_password_hash

from . import db
from .config import settings_of

log = logging.getLogger(__name__)
blueprint = Blueprint("auth", __name__)
FREE_ATTEMPTS = 5  # failures per (name, address) before waiting
FIRST_WAIT_SECONDS = 30  # then 30 s, 60 s, 120 s, ... after each further failure
MAX_WAIT_SECONDS = 15 * 60
FAILURE_MEMORY_SECONDS = 60 * 60  # failures older than this are forgotten
MAX_NAME_LENGTH = 64  # of an account's name, and so of any name a login may try
# (name, address) pairs remembered; beyond it the oldest are forgotten first, so that
# guesses with ever new names cannot grow the table without bound.
MAX_THROTTLE_ROWS = 10_000
MIN_PASSWORD_LENGTH = 10
# zxcvbn's score (0-4) a password needs: 3 is "safely unguessable" by its authors' measure;
# the user name and the product's own words count as known to a guesser.
MIN_PASSWORD_SCORE = 3
CONTEXT_WORDS = ["lesion", "lens", "skinlesion", "dermoscopy", "melanoma"]
OPEN_ENDPOINTS = ("auth.login", "static")
# A load balancer's probe must tell a healthy host from a broken one without an account; with
# credentials the health check also names the models (api.health).
PROBE_ENDPOINT = "api.health"

def wait_after(failures):
    """Seconds to wait after the last of `failures` recent failures."""
    if failures < FREE_ATTEMPTS:
        return 0
    return min(MAX_WAIT_SECONDS, FIRST_WAIT_SECONDS * 2 ** (failures - FREE_ATTEMPTS))


@functools.cache
def _placeholder_hash():
    """Checked for unknown names, so that they cost one hash check like known ones."""
    return generate_password_hash(secrets.token_hex(16))


def _new_account_id():
    return "acct-" + secrets.token_hex(16)


class Users:
    def __init__(self, engine):
        self.engine = engine
        with engine.begin() as connection:
            for (name,) in connection.execute(select(db.users.c.name).where(db.users.c.id.is_(None))).fetchall():
                connection.execute(update(db.users).where(db.users.c.name == name).values(id=_new_account_id()))
            self._own_by_account_id(connection)

    @staticmethod
    def _own_by_account_id(connection):
        """Analyses stored when owners were names become their account's (one-time upgrade)."""
        account = select(db.users.c.id).where(db.users.c.name == db.analyses.c.owner).scalar_subquery()
        connection.execute(update(db.analyses).where(db.analyses.c.owner.in_(select(db.users.c.name)))
                           .values(owner=account))

    def add(self, name, password):
        name = name.strip()
        if not name or len(name) > MAX_NAME_LENGTH:
            raise ValueError(f"A user name of 1 to {MAX_NAME_LENGTH} characters is needed.")
        check_password(name, password)
        try:
            with self.engine.begin() as connection:
                connection.execute(db.users.insert().values(
                    name=name, password_hash=generate_password_hash(password), id=_new_account_id(),
                    created=datetime.now(timezone.utc).isoformat(timespec="seconds"), session_version=0))
        except db.IntegrityError:
            raise ValueError(f"User {name!r} already exists.") from None

    def remove(self, name):
        """The account goes; its analyses stay in the database, owned by nobody who can log in."""
        with self.engine.begin() as connection:
            return connection.execute(delete(db.users).where(db.users.c.name == name)).rowcount

    def names(self):
        with self.engine.connect() as connection:
            return [row[0] for row in connection.execute(select(db.users.c.name).order_by(db.users.c.name))]

    def account(self, name):
        """(account id, session version) of a user name, or None."""
        with self.engine.connect() as connection:
            row = connection.execute(select(db.users.c.id, db.users.c.session_version)
                                     .where(db.users.c.name == name)).first()
        return tuple(row) if row else None

    def verify(self, name, password):
        """The account id when the password is right, else None (one hash check either way)."""
        with self.engine.connect() as connection:
            row = connection.execute(select(db.users.c.password_hash, db.users.c.id)
                                     .where(db.users.c.name == name)).first()
        stored, account = tuple(row) if row else (_placeholder_hash(), None)
        return account if check_password_hash(stored, password) and row is not None else None

    def end_sessions(self, name):
        """Every session of this user (and any copy of its cookie) stops being valid."""
        with self.engine.begin() as connection:
            connection.execute(update(db.users).where(db.users.c.name == name)
                               .values(session_version=db.users.c.session_version + 1))

    def begin_attempt(self, key):
        """Count one login attempt for `key`, unless it must wait. Returns the seconds to
        wait (0: go ahead). One statement decides and counts (an upsert whose update only
        happens when the wait is over), so concurrent attempts on any host cannot slip past
        the count; a successful login clears it."""
        now = time.time()
        throttle = db.login_throttle
        fresh = now - throttle.c.last > FAILURE_MEMORY_SECONDS
        statement = (upsert(self.engine)(throttle).values(key=key, failures=1, last=now)
                     .on_conflict_do_update(
                         index_elements=[throttle.c.key],
                         set_={"failures": case((fresh, 1), else_=throttle.c.failures + 1), "last": now},
                         where=or_(fresh, throttle.c.failures < FREE_ATTEMPTS,
                                   now - throttle.c.last >= _wait_expression(throttle.c.failures)))
                     .returning(throttle.c.failures))
        with self.engine.begin() as connection:
            counted = connection.execute(statement).first()
            if counted is None:
                failures, last = connection.execute(select(throttle.c.failures, throttle.c.last)
                                                    .where(throttle.c.key == key)).one()
        if counted is None:
            return max(1, wait_after(failures) - (now - last))
        if counted[0] == 1:  # a new pair: forget what is too old or too many
            self.prune(now)
        return 0

    def prune(self, now):
        """Forget failures older than FAILURE_MEMORY_SECONDS (they count as none already), then
        the oldest beyond MAX_THROTTLE_ROWS. Its own transaction: if it loses a race with
        another host's, the next new pair prunes again."""
        throttle = db.login_throttle
        try:
            with self.engine.begin() as connection:
                connection.execute(delete(throttle).where(throttle.c.last < now - FAILURE_MEMORY_SECONDS))
                excess = connection.execute(select(func.count()).select_from(throttle)).scalar() - MAX_THROTTLE_ROWS
                if excess > 0:
                    oldest = select(throttle.c.key).order_by(throttle.c.last).limit(excess)
                    connection.execute(delete(throttle).where(throttle.c.key.in_(oldest.scalar_subquery())))
        except db.DatabaseError as error:
            log.info("login throttle not pruned this time: %s", error)

    def clear_failures(self, key):
        with self.engine.begin() as connection:
            connection.execute(delete(db.login_throttle).where(db.login_throttle.c.key == key))


def check_password(name, password):
    """Refuse a short, common or guessable password (NIST SP 800-63B 5.1.1.2), saying why."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"The password needs at least {MIN_PASSWORD_LENGTH} characters.")
    if name.casefold() in password.casefold():
        raise ValueError("The password must not contain the user name.")
    from zxcvbn import zxcvbn
    strength = zxcvbn(password, user_inputs=[name, *CONTEXT_WORDS])
    if strength["score"] < MIN_PASSWORD_SCORE:
        feedback = strength["feedback"]
        reason = " ".join([feedback.get("warning") or "It would be guessed quickly.", *feedback.get("suggestions", [])])
        raise ValueError(f"The password is too easy to guess: {reason}")


def upsert(engine):
    """The dialect's INSERT ... ON CONFLICT (SQLite and PostgreSQL spell it alike)."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def _wait_expression(failures):
    """wait_after() as SQL: one CASE branch per count (SQLite has no power function)."""
    counts = range(FREE_ATTEMPTS + 12)  # by then the wait is MAX_WAIT_SECONDS for good
    return case(*[(failures == n, wait_after(n)) for n in counts], else_=MAX_WAIT_SECONDS)


def users():
    return current_app.extensions["skinlesion_users"]


def current_user():
    """The logged-in user's name (for display), or None when accounts are off."""
    return g.get("user")


def current_owner():
    """The account that owns what this request stores and may see (None: accounts off)."""
    return g.get("account")


def _authenticate(name, password):
    """(account id or None, seconds to wait). Throttled per (name, client address). A name
    longer than any account's is wrong without a look at the database (nothing stored)."""
    if len(name) > MAX_NAME_LENGTH:
        return None, 0
    key = f"{name}|{(request.remote_addr or '')[:64]}"
    wait = users().begin_attempt(key)
    if wait:
        return None, wait
    account = users().verify(name, password)
    if account:
        users().clear_failures(key)
    return account, 0


def _wait_message(seconds):
    minutes = int(seconds + 59) // 60
    return ("Too many failed logins for this name from this address; try again in "
            + (f"{int(seconds) + 1} seconds." if seconds < 60 else f"{minutes} minutes."))


def _uses_basic_credentials():
    """The API, and the image URLs it hands out, take HTTP Basic credentials."""
    return request.blueprint == "api" or (request.endpoint == "pages.analysis_image"
                                          and request.authorization is not None)


def enforce_login():
    g.user = g.account = None
    if not settings_of(current_app).login_required:
        return None
    if request.endpoint in OPEN_ENDPOINTS or (request.endpoint == PROBE_ENDPOINT
                                              and request.authorization is None):
        return None
    if _uses_basic_credentials():
        credentials = request.authorization
        if credentials and credentials.type == "basic":
            account, wait = _authenticate(credentials.username or "", credentials.password or "")
            if wait:
                return jsonify({"error": _wait_message(wait)}), 429
            if account:
                g.user, g.account = credentials.username, account
                return None
        response = jsonify({"error": "Login required (HTTP Basic credentials)."})
        response.headers["WWW-Authenticate"] = 'Basic realm="skinlesion"'
        return response, 401
    name = session.get("user")
    if name and users().account(name) == (session.get("account"), session.get("version")):
        g.user, g.account = name, session["account"]
        return None
    return redirect(url_for("auth.login", next=request.full_path if request.method == "GET" else None))


def local_target(target):
    """`target` if it is a path on this site, else None: an open redirect helps phishing.

    Read as a browser reads it: browsers drop tabs and line breaks anywhere in a URL and
    take a backslash for a slash, so next=%2F%09%2Fevil.example and next=%2F%5Cevil.example
    both lead to another site.
    """
    cleaned = "".join(ch for ch in target if ch >= " " and ch != "\x7f").strip().replace("\\", "/")
    try:
        parts = urlsplit(cleaned)
    except ValueError:
        return None
    if parts.scheme or parts.netloc or not cleaned.startswith("/") or cleaned.startswith("//"):
        return None
    return cleaned


@blueprint.route("/login", methods=["GET", "POST"])
def login():
    error, status = None, 200
    if request.method == "POST":
        name = request.form.get("name", "").strip()
        account, wait = _authenticate(name, request.form.get("password", ""))
        if account:
            session.clear()
            session.update(user=name, account=account, version=users().account(name)[1])
            return redirect(local_target(request.args.get("next", "")) or url_for("pages.index"),
                            code=303)
        error, status = (_wait_message(wait), 429) if wait else ("Wrong user name or password.", 401)
    return render_template("login.html", error=error), status


@blueprint.post("/logout")
def logout():
    if current_user():
        users().end_sessions(current_user())
    session.clear()
    return redirect(url_for("auth.login"), code=303)


def init_app(app, engine):
    app.extensions["skinlesion_users"] = Users(engine)
    settings = settings_of(app)
    if not settings.login_required and not settings.workstation:
        log.warning("Accounts are off (SKINLESION_REQUIRE_LOGIN=never): anyone who can reach "
                    "this server can read and delete every analysis.")
    app.before_request(enforce_login)
    app.register_blueprint(blueprint)
    app.jinja_env.globals["current_user"] = current_user
