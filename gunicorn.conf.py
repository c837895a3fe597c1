"""gunicorn settings: gunicorn -c gunicorn.conf.py "app:create_app()"

Each worker builds its own app (no preload: each loads its own LiteRT interpreters, which
are not to be shared across a fork), loads the models once and warms them up before taking
requests. No serving process imports TensorFlow.
"""
from skinlesion.settings import Settings

# Read once here; a worker's own settings differ only in what for_gunicorn() says, and reach
# it through the environment (each worker builds its app from SKINLESION_* variables).
_settings = Settings.from_environment().for_gunicorn()
bind = _settings.bind
workers = _settings.workers
threads = _settings.threads
worker_class = "gthread"
preload_app = False
timeout = _settings.timeout
graceful_timeout = 30
max_requests = _settings.max_requests
max_requests_jitter = _settings.max_requests_jitter
limit_request_line = 8190
accesslog = "-"
errorlog = "-"
raw_env = _settings.as_environment("inference_threads", "boot_failure")


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
    settings = _settings
    try:
        segmenter, *classifiers = model_paths(settings.models_dir, settings.tasks)
        check_model_file(segmenter, served=True)
        cards = {task: check_served_classifier(path, check_model_file(path, served=True))
                 for task, path in zip(settings.tasks, classifiers)}
        if settings.calibration:  # a clinic's own threshold, made for one of the loaded models
            site = read_site_calibration(settings.calibration)
            check_site_calibration(site, for_site(site, cards, settings.calibration), settings.calibration)
        if settings.scales:  # each dermatoscope's field of view, for millimetres
            read_scales(settings.scales)
        require_shared_secret(settings)
        sweep_orphans_at_start(settings)  # here, once, not in every worker (also checks the database)
    except (ModelFileError, CalibrationError, ConfigurationError, ScaleError) as error:
        server.log.error("Cannot start: %s", error)
        sys.exit(1)
    except db.DatabaseError as error:
        server.log.error("Cannot start: the database %s cannot be opened (%s)",
                         db.describe(settings.database), error.orig or error)
        sys.exit(1)
