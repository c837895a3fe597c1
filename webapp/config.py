"""Settings from environment variables (SKINLESION_*), with defaults for a workstation."""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _env(name, default):
    return os.environ.get(f"SKINLESION_{name}", default)


def from_environment():
    """The app's configuration; every key can also be overridden by create_app(config)."""
    return {
        "MODELS_DIR": Path(_env("MODELS_DIR", ROOT / "models")),
        # A clinic's own referral threshold (python -m training.calibrate ... --out site.json).
        "CALIBRATION": _env("CALIBRATION", "") or None,
        "TASKS": tuple(t.strip() for t in _env("TASKS", "7class,3class").split(",") if t.strip()),
        "UPLOAD_DIR": Path(_env("UPLOAD_DIR", ROOT / "uploads")),
        "HEATMAP_DIR": Path(_env("HEATMAP_DIR", ROOT / "heatmap")),
        "DATABASE": Path(_env("DATABASE", ROOT / "instance" / "analyses.sqlite3")),
        "MAX_CONTENT_LENGTH": int(float(_env("MAX_UPLOAD_MB", "20")) * 1024 * 1024),
        "MAX_FILES": int(_env("MAX_FILES", "20")),
        "RETENTION_DAYS": int(_env("RETENTION_DAYS", "0")),  # 0: keep forever
        "EXAMPLES_DIR": ROOT / "static" / "examples",
        "OVERLAY_FORMAT": _env("OVERLAY_FORMAT", "jpg"),
        "WARM_UP": _env("WARM_UP", "1") == "1",
        "SECRET_KEY": os.environ.get("SKINLESION_SECRET_KEY"),
        # Where the server listens decides whether accounts are needed (REQUIRE_LOGIN=auto).
        "LISTEN_HOST": _env("HOST", "") or _env("BIND", "127.0.0.1:8083").rsplit(":", 1)[0],
        "REQUIRE_LOGIN": _env("REQUIRE_LOGIN", "auto"),  # auto | always | never
        # TensorFlow threads per process (0: TensorFlow decides). Under gunicorn, cores / workers.
        "TF_THREADS": int(_env("TF_THREADS", "0")),
    }
