"""gunicorn settings: gunicorn -c gunicorn.conf.py "app:create_app()"

Each worker builds its own app (no preload: each loads its own LiteRT interpreters, which
are not to be shared across a fork), loads the models once and warms them up before taking
requests. No serving process imports TensorFlow.
"""
from webapp.config import server_settings

_server = server_settings()
bind = _server["bind"]
workers = _server["workers"]
threads = _server["threads"]
worker_class = "gthread"
preload_app = False
timeout = _server["timeout"]
graceful_timeout = 30
max_requests = _server["max_requests"]
max_requests_jitter = _server["max_requests_jitter"]
limit_request_line = 8190
accesslog = "-"
errorlog = "-"
# Passed to each worker's app (webapp.config.from_environment reads them).
raw_env = [f"SKINLESION_INFERENCE_THREADS={_server['inference_threads']}",
           f"SKINLESION_BOOT_FAILURE={_server['boot_failure']}"]


def on_starting(server):
    """Check every model file against its card, and a site calibration file against its
    model, before forking (no TensorFlow needed): a missing or corrupt file stops the server
    with one clear line naming it. Then sweep orphan files, once for all workers."""
    import sys
    from skinlesion.cards import ModelFileError, check_model_file, check_served_classifier, model_paths
    from skinlesion.classify import (CalibrationError, check_site_calibration, for_site,
                                     read_site_calibration)
    from skinlesion.scale import ScaleError, read_scales
    from webapp import ConfigurationError, db, require_shared_secret, sweep_orphans_at_start
    from webapp.config import from_environment
    config = from_environment()
    try:
        segmenter, *classifiers = model_paths(config["MODELS_DIR"], config["TASKS"])
        check_model_file(segmenter, served=True)
        cards = {task: check_served_classifier(path, check_model_file(path, served=True))
                 for task, path in zip(config["TASKS"], classifiers)}
        if config["CALIBRATION"]:  # a clinic's own threshold, made for one of the loaded models
            site = read_site_calibration(config["CALIBRATION"])
            check_site_calibration(site, for_site(site, cards, config["CALIBRATION"]), config["CALIBRATION"])
        if config["SCALES"]:  # each dermatoscope's field of view, for millimetres
            read_scales(config["SCALES"])
        require_shared_secret(config)
        sweep_orphans_at_start(config)  # here, once, not in every worker (also checks the database)
    except (ModelFileError, CalibrationError, ConfigurationError, ScaleError) as error:
        server.log.error("Cannot start: %s", error)
        sys.exit(1)
    except db.DatabaseError as error:
        server.log.error("Cannot start: the database %s cannot be opened (%s)",
                         db.describe(config["DATABASE"]), error.orig or error)
        sys.exit(1)
