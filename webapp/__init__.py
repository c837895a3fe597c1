"""The Flask web app: upload, result, history, compare, batch, JSON API.

    create_app()                                    # settings from SKINLESION_* variables
    create_app(Settings.from_environment(...))      # any setting overridden (tests)
"""
import logging
import secrets
from pathlib import Path

from flask import Flask

from skinlesion.settings import Settings

from . import db
from .config import keep_settings
from .files import AnalysisFiles
from .store import Store

log = logging.getLogger(__name__)


class ConfigurationError(RuntimeError):
    """A setting that cannot work; str(error) says which and what to do."""


def require_shared_secret(settings):
    """With a database URL (several hosts) the key must come from the environment: a key
    generated on each host would make every host reject the others' sessions."""
    if settings.database_is_url and not settings.secret_key:
        raise ConfigurationError("SKINLESION_SECRET_KEY must be set when SKINLESION_DATABASE is a "
                                 "database URL: every host needs the same key (python -c \"import "
                                 "secrets; print(secrets.token_hex(32))\").")


def _secret_key(settings):
    """From the environment, else generated once and kept beside the SQLite database."""
    require_shared_secret(settings)
    if settings.secret_key:
        return settings.secret_key
    path = settings.database_dir / "secret_key"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def create_app(settings=None, testing=False):
    """settings: a Settings, made once by the caller; from the environment when not given."""
    settings = settings or Settings.from_environment()
    app = Flask(__name__, template_folder="../templates", static_folder="../static")
    keep_settings(app, settings)
    app.config.update(TESTING=testing, SECRET_KEY=_secret_key(settings),
                      TRUSTED_HOSTS=list(settings.trusted_hosts),
                      MAX_CONTENT_LENGTH=settings.max_content_length,
                      SESSION_COOKIE_SECURE=settings.secure_cookies, SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_HTTPONLY=True)
    for folder in (settings.upload_dir, settings.heatmap_dir):
        Path(folder).mkdir(parents=True, exist_ok=True)

    from skinlesion.imageio import return_large_blocks_promptly
    from skinlesion.runtime import configure_threads
    configure_threads(settings.inference_threads)
    return_large_blocks_promptly()  # concurrent decodes give their memory back
    from . import api, auth, cli, errors, pages, patient_pages, security
    from .engine import Engine
    security.init_app(app)
    try:
        store = Store(settings.database)
        auth.init_app(app, store.engine)  # before CSRF: an anonymous POST is sent to the login page first
    except db.DatabaseError as error:
        if not settings.degrade_on_boot_failure:
            raise
        return _unavailable(app, f"the database {db.describe(settings.database)} cannot be opened "
                                 f"({error.orig or error})")
    security.init_csrf(app)
    app.extensions["skinlesion"] = Engine(settings, store)
    cli.init_app(app)
    app.register_blueprint(pages.blueprint)
    app.register_blueprint(api.blueprint)
    app.register_blueprint(patient_pages.blueprint)
    errors.register_error_handlers(app)
    return app


def _unavailable(app, reason):
    """A worker that cannot reach its database still starts (instead of making gunicorn's
    master halt every worker): it logs one error line and answers 503 to everything."""
    from flask import jsonify, request
    log.error("Started WITHOUT DATABASE, every request answers 503: %s", reason)
    message = "The server cannot read its database. Please tell the administrator."

    @app.route("/", defaults={"path": ""}, methods=["GET", "POST"])
    @app.route("/<path:path>", methods=["GET", "POST"])
    def unavailable(path):
        if request.path.startswith("/api/"):
            body = {"error": message, "status": "failing", "problems": [reason]}
            return jsonify(body), 503
        # No template: the page layout needs the parts that could not start.
        return (f"<!doctype html><title>Unavailable</title><h1>Lesion Lens is unavailable</h1>"
                f"<p>{message}</p>", 503, {"Content-Type": "text/html; charset=utf-8"})
    return app


def sweep_orphans_at_start(settings, store=None):
    """Once per server start (app.py, gunicorn's master), never per worker: remove files
    an interrupted analysis left without a row (older than the grace period). `store`: the
    app's own, when there is one (app.py); else one is opened and closed again."""
    own = store is None
    store = store or Store(settings.database)
    removed = AnalysisFiles(settings.upload_dir, settings.heatmap_dir).sweep_orphans(store.all_file_names())
    if own:
        store.engine.dispose()  # gunicorn's master forks next: no open connection may be inherited
    if removed:
        log.warning("removed %d orphan files left by interrupted analyses", removed)
    return removed
