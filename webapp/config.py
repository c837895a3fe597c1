"""Settings from environment variables (SKINLESION_*), with defaults for a workstation."""
import os
from pathlib import Path

from skinlesion.classes import TASKS

ROOT = Path(__file__).resolve().parents[1]


def _env(name, default):
    return os.environ.get(f"SKINLESION_{name}", default)


def _database(value):
    return str(value) if "://" in str(value) else Path(value)


def _inference_threads(default):
    """SKINLESION_INFERENCE_THREADS (SKINLESION_TF_THREADS, its name while TensorFlow served, still read)."""
    return int(_env("INFERENCE_THREADS", _env("TF_THREADS", default)))


def from_environment():
    """The app's configuration; every key can also be overridden by create_app(config)."""
    return {
        "MODELS_DIR": Path(_env("MODELS_DIR", ROOT / "models")),
        # A clinic's own referral threshold (python -m training.calibrate ... --out site.json).
        "CALIBRATION": _env("CALIBRATION", "") or None,
        # Each dermatoscope's field of view, for sizes in millimetres (skinlesion/scale.py).
        "SCALES": _env("SCALES", "") or None,
        "TASKS": tuple(t.strip() for t in _env("TASKS", ",".join(TASKS)).split(",") if t.strip()),
        "UPLOAD_DIR": Path(_env("UPLOAD_DIR", ROOT / "uploads")),
        "HEATMAP_DIR": Path(_env("HEATMAP_DIR", ROOT / "heatmap")),
        # A path (SQLite, one host) or postgresql://user:password@host:port/dbname (several hosts).
        "DATABASE": _database(_env("DATABASE", ROOT / "instance" / "analyses.sqlite3")),
        "MAX_CONTENT_LENGTH": int(float(_env("MAX_UPLOAD_MB", "20")) * 1024 * 1024),
        "MAX_FILES": int(_env("MAX_FILES", "20")),
        # Work per request: the sum of the images' pixels (each is also capped at 50 MP).
        "MAX_BATCH_MEGAPIXELS": int(_env("MAX_BATCH_MEGAPIXELS", "120")),
        "RETENTION_DAYS": int(_env("RETENTION_DAYS", "0")),  # 0: keep forever
        # Work per account and minute, counted across workers and hosts (webapp/limits.py);
        # 0: no limit. Without accounts (the loopback workstation) nothing is limited.
        "ANALYSES_PER_MINUTE": int(_env("ANALYSES_PER_MINUTE", "30")),
        "REPORTS_PER_MINUTE": int(_env("REPORTS_PER_MINUTE", "10")),
        "EXAMPLES_DIR": ROOT / "static" / "examples",
        "OVERLAY_FORMAT": _env("OVERLAY_FORMAT", "jpg"),
        "WARM_UP": _env("WARM_UP", "1") == "1",
        "SECRET_KEY": os.environ.get("SKINLESION_SECRET_KEY"),
        # auto: accounts are needed unless this is `python app.py` on loopback (it sets
        # WORKSTATION and LISTEN_HOST); always | never: said explicitly.
        "REQUIRE_LOGIN": _env("REQUIRE_LOGIN", "auto"),
        "WORKSTATION": False,
        "LISTEN_HOST": None,
        # Host names this server answers to (DNS rebinding is refused); add the name
        # clinicians type, e.g. SKINLESION_TRUSTED_HOSTS=lesions.clinic.example
        "TRUSTED_HOSTS": [h.strip() for h in _env("TRUSTED_HOSTS", "localhost,127.0.0.1").split(",")
                          if h.strip()],
        # Absolute URLs in API answers use this base (else the request's trusted Host).
        "PUBLIC_URL": _env("PUBLIC_URL", "").rstrip("/") or None,
        # Behind a reverse proxy: how many proxies set X-Forwarded-For/-Proto (0: none).
        "PROXIES": int(_env("PROXIES", "0")),
        # Session cookie only over HTTPS: set to 1 when clinicians reach the server by https.
        "SESSION_COOKIE_SECURE": _env("SECURE_COOKIES", "0") == "1",
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_HTTPONLY": True,
        # stop: a missing or damaged model or database stops the start (python app.py).
        # degrade (set by gunicorn.conf.py): a worker starting after a file went bad comes up
        # anyway, logs one error line, fails /api/health and answers what it cannot do
        # with 503, instead of halting the whole server and its healthy workers.
        "BOOT_FAILURE": _env("BOOT_FAILURE", "stop"),
        # LiteRT threads per model (0: LiteRT decides). Under gunicorn, cores / workers.
        "INFERENCE_THREADS": _inference_threads("0"),
    }


def server_settings():
    """gunicorn's settings (gunicorn.conf.py), from the same SKINLESION_* variables."""
    workers = int(_env("WORKERS", "2"))
    return {
        "bind": _env("BIND", "127.0.0.1:8083"),
        "workers": workers,
        "threads": int(_env("THREADS", "2")),
        # A CPU analysis takes seconds; a cold worker loads three models and traces them.
        "timeout": int(_env("TIMEOUT", "120")),
        # Recycle workers now and then so a slow leak can never grow without bound.
        "max_requests": int(_env("MAX_REQUESTS", "500")),
        "max_requests_jitter": int(_env("MAX_REQUESTS_JITTER", "50")),
        # Each worker's models get its share of the cores.
        "inference_threads": _inference_threads(str(max(1, (os.cpu_count() or 2) // workers))),
        # A worker restarted after a model or the database went bad comes up degraded (503s,
        # a failing /api/health, one error line) instead of making the master halt every worker.
        "boot_failure": _env("BOOT_FAILURE", "degrade"),
    }
