"""The Flask web app: upload, result, history, compare, batch, JSON API.

    create_app()          # configuration from SKINLESION_* environment variables
    create_app({...})     # tests override any key
"""
import logging
import secrets
from pathlib import Path

from flask import Flask

from . import config as settings
from .store import Store

log = logging.getLogger(__name__)


def _secret_key(app):
    """From the environment, else generated once and kept in the instance folder."""
    if app.config.get("SECRET_KEY"):
        return app.config["SECRET_KEY"]
    path = Path(app.config["DATABASE"]).parent / "secret_key"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def _configure_tensorflow(threads):
    """Pin TensorFlow's thread pools (before any model loads) so workers do not oversubscribe."""
    import tensorflow as tf
    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # already initialised in this process (tests build many apps)
            pass


def create_app(config=None):
    app = Flask(__name__, template_folder="../templates", static_folder="../static")
    app.config.update(settings.from_environment())
    app.config.update(config or {})
    app.config["SECRET_KEY"] = _secret_key(app)
    for folder in ("UPLOAD_DIR", "HEATMAP_DIR"):
        Path(app.config[folder]).mkdir(parents=True, exist_ok=True)

    _configure_tensorflow(app.config.get("TF_THREADS", 0))
    from .engine import Engine
    store = Store(app.config["DATABASE"])
    engine = Engine(app.config, store)
    swept = engine.sweep_orphans()
    if swept:
        log.warning("removed %d orphan files left by an interrupted analysis", swept)
    app.extensions["skinlesion"] = engine

    from . import api, auth, cli, pages, security
    auth.init_app(app)  # before CSRF: an anonymous POST is sent to the login page first
    security.init_app(app)
    cli.init_app(app)
    app.register_blueprint(pages.blueprint)
    app.register_blueprint(api.blueprint)
    pages.register_error_handlers(app)
    return app
