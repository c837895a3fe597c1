"""Every setting of a serving process, in one frozen dataclass built once from SKINLESION_*
environment variables and handed to create_app, gunicorn.conf.py and predict.py.

    settings = Settings.from_environment()          # the environment, else the defaults
    settings = Settings.from_environment(tasks=("3class",))   # tests: any field overridden
    python -m skinlesion.settings                   # the table in docs/deployment.md

Each field names its variable and says what it does; docs/deployment.md's table is printed
from here (tests/test_settings.py keeps the two equal). Fields without a variable are set by
the program that builds the settings (app.py says it is the loopback workstation).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from .classes import TASKS

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "SKINLESION_"
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
LOGIN_CHOICES = ("auto", "always", "never")
BOOT_FAILURE_CHOICES = ("auto", "stop", "degrade")
# Old names still read: SKINLESION_TF_THREADS from while TensorFlow served.
OLD_NAMES = {"INFERENCE_THREADS": ("TF_THREADS",)}


def setting(variable, default, meaning, shown=None, parse=None):
    """A field read from SKINLESION_<variable>; `shown` is the default as the table says it;
    `parse` reads the variable's text (else the field's type says how)."""
    return field(default=default, metadata={"variable": variable, "meaning": meaning, "shown": shown,
                                            "parse": parse})


def fixed(default, meaning):
    """A field no environment variable sets (the program that builds the settings does)."""
    return field(default=default, metadata={"variable": None, "meaning": meaning, "parse": None})


def _words(value):
    return tuple(word.strip() for word in value.split(",") if word.strip())


def _optional_path(value):
    return Path(value) if value else None


def _database(value):
    """A SQLite file's path, or a database URL (postgresql://...) kept as text."""
    return str(value) if "://" in str(value) else Path(value)


def _flag(value):
    if value not in ("0", "1"):
        raise ValueError("must be 0 or 1")
    return value == "1"


class SettingError(ValueError):
    """An environment variable that cannot be read; str(error) names it and what it takes."""


@dataclass(frozen=True)
class Settings:
    # The analysis
    models_dir: Path = setting("MODELS_DIR", ROOT / "models", "models and their cards", "models/")
    tasks: tuple = setting("TASKS", tuple(TASKS), "classifiers to load", ",".join(TASKS))
    calibration: Path | None = setting(
        "CALIBRATION", None, "a site calibration file (`python -m training.calibrate`): this clinic's "
        "referral threshold")
    scales: Path | None = setting(
        "SCALES", None, "a JSON file of each dermatoscope's field of view, `{\"Make Model\": "
        "{\"field_of_view_mm\": 25}, \"*\": {...}}`: sizes in mm (else the image's own EXIF "
        "resolution when plausible; pixels otherwise, and the page says which)")
    overlay_format: str = setting("OVERLAY_FORMAT", "jpg", "file format of the derived images (jpg or png)")
    inference_threads: int = setting(
        "INFERENCE_THREADS", 0, "LiteRT threads per model in a process (0: LiteRT decides; under "
        "gunicorn cores / workers). `SKINLESION_TF_THREADS`, the old name, is still read",
        "0 (cores / workers under gunicorn)")
    warm_up: bool = setting("WARM_UP", True, "1: run each model once at start, so that the first "
                            "clinician does not wait for it", "1")
    # Storage
    upload_dir: Path = setting("UPLOAD_DIR", ROOT / "uploads", "uploaded images, kept as sent", "uploads/")
    heatmap_dir: Path = setting("HEATMAP_DIR", ROOT / "heatmap", "every image derived from an analysis "
                                "(overlays, outline, mask, crop)", "heatmap/")
    database: Path | str = setting(
        "DATABASE", ROOT / "instance" / "analyses.sqlite3", "the history: a SQLite file, or "
        "`postgresql://user:password@host:port/dbname` shared by several hosts",
        "instance/analyses.sqlite3")
    retention_days: int = setting("RETENTION_DAYS", 0, "default for `flask --app app purge` (0: keep)")
    # Requests
    max_upload_mb: float = setting("MAX_UPLOAD_MB", 20.0, "request size limit (413 above it)", "20")
    max_files: int = setting("MAX_FILES", 20, "files per batch")
    max_batch_megapixels: int = setting("MAX_BATCH_MEGAPIXELS", 120, "pixels per request, summed over "
                                        "a batch's images (413 above it); each image at most 50 MP")
    analyses_per_minute: int = setting(
        "ANALYSES_PER_MINUTE", 30, "analyses per account and minute, counted in the shared database "
        "(every worker and host); over it 429 with `Retry-After`; 0: no limit; nothing is limited "
        "without accounts")
    reports_per_minute: int = setting("REPORTS_PER_MINUTE", 10, "PDF reports per account and minute, "
                                      "counted as the analyses are")
    # Accounts and the network
    require_login: str = setting(
        "REQUIRE_LOGIN", "auto", "`auto`: no accounts only for `python app.py` on loopback; any other "
        "server (gunicorn, `flask run`, `SKINLESION_HOST=0.0.0.0`) needs them; `always`; `never` "
        "(must be said, and is logged as a warning)")
    secret_key: str | None = setting(
        "SECRET_KEY", None, "session signing key; required, the same on every host, with a database "
        "URL", "generated once beside the SQLite file")
    trusted_hosts: tuple = setting("TRUSTED_HOSTS", ("localhost", "127.0.0.1"), "host names the server "
                                   "answers to; others get 400 (DNS rebinding). Add the name "
                                   "clinicians type", "localhost,127.0.0.1")
    public_url: str | None = setting("PUBLIC_URL", None, "base of the absolute URLs in API answers, "
                                     "e.g. `https://lesions.clinic.example`",
                                     parse=lambda value: value.rstrip("/") or None)
    proxies: int = setting("PROXIES", 0, "reverse proxies in front that set `X-Forwarded-For`/`-Proto` "
                           "(the client's address for login throttling, the scheme)")
    secure_cookies: bool = setting("SECURE_COOKIES", False, "1: the session cookie goes over HTTPS "
                                   "only (set it when served by https)", "0")
    boot_failure: str = setting(
        "BOOT_FAILURE", "auto", "a process that finds a model or the database broken: `stop`, or "
        "`degrade` (start anyway: 503s, a failing health check, one error line); `auto`: stop for "
        "`python app.py`, degrade for a gunicorn worker (one bad worker must not halt the rest)")
    # `python app.py`
    host: str = setting("HOST", "127.0.0.1", "`python app.py`: the address it listens on")
    port: int = setting("PORT", 8083, "`python app.py`: its port")
    # gunicorn (gunicorn.conf.py)
    bind: str = setting("BIND", "127.0.0.1:8083", "gunicorn: the address it listens on")
    workers: int = setting("WORKERS", 2, "gunicorn: worker processes")
    threads: int = setting("THREADS", 2, "gunicorn: threads per worker")
    timeout: int = setting("TIMEOUT", 120, "gunicorn: seconds a request may take (a CPU analysis "
                           "takes seconds, a cold worker loads three models)")
    max_requests: int = setting("MAX_REQUESTS", 500, "gunicorn: a worker is replaced after this many "
                                "requests, so that a slow leak cannot grow without bound")
    max_requests_jitter: int = setting("MAX_REQUESTS_JITTER", 50, "gunicorn: so that workers are not "
                                       "all replaced at once")
    # Set by the program, not the environment
    workstation: bool = fixed(False, "`python app.py` (its listening host decides the accounts)")
    examples_dir: Path = fixed(ROOT / "static" / "examples", "the example images of the upload page")

    @classmethod
    def from_environment(cls, environ=None, **overrides):
        """The settings the environment gives, with `overrides` (field names) on top."""
        environ = os.environ if environ is None else environ
        values = {}
        for item in dataclasses.fields(cls):
            variable = item.metadata["variable"]
            names = (variable, *OLD_NAMES.get(variable, ())) if variable else ()
            text = next((environ[PREFIX + name] for name in names if PREFIX + name in environ), None)
            if text is not None:
                values[item.name] = _parse(item, text)
        unknown = set(overrides) - {item.name for item in dataclasses.fields(cls)}
        if unknown:
            raise TypeError(f"no such setting: {', '.join(sorted(unknown))}")
        return cls(**{**values, **overrides})

    def __post_init__(self):
        for name, choices in (("require_login", LOGIN_CHOICES), ("boot_failure", BOOT_FAILURE_CHOICES)):
            if getattr(self, name) not in choices:
                raise SettingError(f"{PREFIX}{name.upper()} must be one of {', '.join(choices)}, "
                                   f"not {getattr(self, name)!r}.")

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    @property
    def login_required(self):
        """Accounts are needed unless this is `python app.py` on loopback, or `never` is said."""
        if self.require_login != "auto":
            return self.require_login == "always"
        return not (self.workstation and self.host in LOOPBACK)

    @property
    def degrade_on_boot_failure(self):
        return self.boot_failure == "degrade"

    @property
    def max_content_length(self):
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def database_is_url(self):
        return isinstance(self.database, str)

    @property
    def database_dir(self):
        """SQLite's folder, whose disk every analysis writes too (None for a database URL)."""
        return None if self.database_is_url else Path(self.database).parent

    def for_gunicorn(self, cores=None):
        """A gunicorn worker's settings: `auto` failures degrade, and each worker's models get
        their share of the cores unless the threads were said."""
        cores = cores or os.cpu_count() or 2
        return self.replace(
            boot_failure="degrade" if self.boot_failure == "auto" else self.boot_failure,
            inference_threads=self.inference_threads or max(1, cores // self.workers))

    def as_environment(self, *names):
        """The named fields as SKINLESION_* variables (gunicorn hands them to its workers)."""
        fields = {item.name: item for item in dataclasses.fields(self)}
        return [f"{PREFIX}{fields[name].metadata['variable']}={_text(getattr(self, name))}" for name in names]


def _parse(item, text):
    """The field's value from its variable's text, or a SettingError naming the variable."""
    parsers = {"Path": Path, "tuple": _words, "Path | None": _optional_path, "Path | str": _database,
               "int": int, "float": float, "bool": _flag, "str | None": lambda value: value or None}
    parse = item.metadata["parse"] or parsers.get(item.type, str)
    try:
        return parse(text)
    except ValueError as error:
        raise SettingError(f"{PREFIX}{item.metadata['variable']}={text!r} cannot be read: {error}.") from None


def _text(value):
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


def markdown_table():
    """docs/deployment.md's configuration table, one row per environment variable."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for item in dataclasses.fields(Settings):
        variable = item.metadata["variable"]
        if variable is None:
            continue
        shown = item.metadata["shown"]
        default = shown if shown is not None else ("(none)" if item.default is None else _text(item.default))
        rows.append(f"| `{PREFIX}{variable}` | {default} | {item.metadata['meaning']} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
