"""gunicorn settings: gunicorn -c gunicorn.conf.py "app:create_app()"

Each worker builds its own app (no preload: TensorFlow is never imported in the master
before fork), loads the models once and warms them up before taking requests.
"""
import os

bind = os.environ.get("SKINLESION_BIND", "127.0.0.1:8083")
workers = int(os.environ.get("SKINLESION_WORKERS", "2"))
threads = int(os.environ.get("SKINLESION_THREADS", "2"))
worker_class = "gthread"
preload_app = False
# A CPU analysis takes seconds; a cold worker loads three models and traces them.
timeout = int(os.environ.get("SKINLESION_TIMEOUT", "120"))
graceful_timeout = 30
# Recycle workers now and then so a slow leak can never grow without bound.
max_requests = int(os.environ.get("SKINLESION_MAX_REQUESTS", "500"))
max_requests_jitter = int(os.environ.get("SKINLESION_MAX_REQUESTS_JITTER", "50"))
limit_request_line = 8190
accesslog = "-"
errorlog = "-"
raw_env = [
    f"SKINLESION_TF_THREADS={os.environ.get('SKINLESION_TF_THREADS', max(1, (os.cpu_count() or 2) // workers))}",
    # A worker restarted after a model or the database went bad comes up degraded (503s, a
    # failing /api/health, one error line) instead of making the master halt every worker.
    f"SKINLESION_BOOT_FAILURE={os.environ.get('SKINLESION_BOOT_FAILURE', 'degrade')}",
]


def on_starting(server):
    """Check every model file against its card, and a site calibration file against its
    model, before forking (no TensorFlow needed): a missing or corrupt file stops the server
    with one clear line naming it. Then sweep orphan files, once for all workers."""
    import sys
    from skinlesion.cards import ModelFileError, check_model_file, model_paths
    from skinlesion.classify import (CalibrationError, check_site_calibration, for_site,
                                     read_site_calibration)
    from webapp import ConfigurationError, db, require_shared_secret, sweep_orphans_at_start
    from webapp.config import from_environment
    config = from_environment()
    try:
        segmenter, *classifiers = model_paths(config["MODELS_DIR"], config["TASKS"])
        check_model_file(segmenter)
        cards = {task: check_model_file(path) for task, path in zip(config["TASKS"], classifiers)}
        if config["CALIBRATION"]:  # a clinic's own threshold, made for one of the loaded models
            site = read_site_calibration(config["CALIBRATION"])
            check_site_calibration(site, for_site(site, cards, config["CALIBRATION"]), config["CALIBRATION"])
        require_shared_secret(config)
        sweep_orphans_at_start(config)  # here, once, not in every worker (also checks the database)
    except (ModelFileError, CalibrationError, ConfigurationError) as error:
        server.log.error("Cannot start: %s", error)
        sys.exit(1)
    except db.DatabaseError as error:
        server.log.error("Cannot start: the database %s cannot be opened (%s)",
                         db.describe(config["DATABASE"]), error.orig or error)
        sys.exit(1)
