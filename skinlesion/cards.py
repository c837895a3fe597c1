"""Model cards: the JSON file beside each model, and the file checks that need no TensorFlow.

Kept free of Keras so that a process can check the model files (gunicorn's master
before it forks, a CLI) without importing TensorFlow.
"""
import hashlib
import json
import os
import tempfile
from pathlib import Path


SEGMENTER_FILE = "unet.h5"
EXPORT_COMMAND = "python -m training.export_litert --model {path}"  # writes a model's LiteRT files


def classifier_file(task):
    return f"classifier_{task}.h5"


def model_paths(models_dir, tasks):
    """The model files an app serving `tasks` loads: the segmenter, then one classifier each."""
    models_dir = Path(models_dir)
    return [models_dir / SEGMENTER_FILE] + [models_dir / classifier_file(task) for task in tasks]


class ModelFileError(RuntimeError):
    """A model file or its card is missing, corrupt or does not match."""


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def card_digest(card):
    """The first 12 hex digits of the sha256 of a card's content. A refitted threshold,
    temperature or image side changes what an analysis says without changing the weights,
    so a stored analysis names the card revision it was made with as well."""
    return hashlib.sha256(json.dumps(card, sort_keys=True).encode()).hexdigest()[:12]


def card_path(model_path):
    return Path(model_path).with_suffix(".json")


def write_card(model_path, card):
    """Write the JSON card beside the model, stamped with the model file's sha256."""
    card = dict(card, file=Path(model_path).name, sha256=sha256_of(model_path))
    save_card(model_path, card)
    return card


def save_card(model_path, card):
    """Replace the card in one step (a temporary file beside it, then os.replace): a crash
    leaves the old card or the new one, never half of one."""
    path = card_path(model_path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as file:
            file.write(json.dumps(card, indent=2) + "\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# What serving a classifier needs from its card: the referral threshold, and the fitted
# reliability parts (temperature, feature statistics, the dermoscopy gate). A card may say
# its model has none ({"fitted": false, "why": ...}: the tests' tiny random models); serving
# then runs it uncalibrated and ungated, as that card says, and logs it.
SERVED_CLASSIFIER_SECTIONS = ("referral", "reliability")


def check_served_classifier(model_path, card):
    """Refuse to serve a classifier whose card lacks what its task needs (a refit that
    crashed once left a card without its reliability section, and serving ran on without
    a gate and at temperature 1 without a word)."""
    for section in SERVED_CLASSIFIER_SECTIONS:
        if not card.get(section):
            raise ModelFileError(
                f"The card of {model_path} has no {section!r} section, which serving a classifier "
                f"needs (referral threshold, temperature, dermoscopy gate). Refit it: python -m "
                f"training.fit_reliability --model {model_path} --data ...")
    return card


def read_card(model_path):
    path = card_path(model_path)
    if not path.is_file():
        raise ModelFileError(f"Model card missing: {path} (every model ships with its card).")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ModelFileError(f"Model card {path} is not valid JSON ({error}).") from None


def check_model_file(model_path, served=False):
    """Refuse a missing model, a missing or unreadable card, or a sha256 mismatch. Returns the card.
    served: also the LiteRT files serving runs (missing, stale or changed: refused)."""
    model_path = Path(model_path)
    if not model_path.is_file():
        raise ModelFileError(f"Model file missing: {model_path}")
    card = read_card(model_path)
    actual = sha256_of(model_path)
    if card.get("sha256") != actual:
        raise ModelFileError(
            f"Model file {model_path} does not match its card (sha256 {actual[:12]}... "
            f"but the card says {str(card.get('sha256'))[:12]}...): the file is corrupt "
            "or was replaced without a new card.")
    _check_companion(model_path, card.get("reliability"))
    if served:
        check_litert_files(model_path, card)
    return card


def check_litert_files(model_path, card):
    """The LiteRT section of a checked card, refused with a clear message when the model was
    not exported, or when the .h5 changed after the export (a stale .tflite) or a .tflite changed."""
    model_path = Path(model_path)
    command = EXPORT_COMMAND.format(path=model_path)
    section = card.get("litert")
    if not section:
        raise ModelFileError(f"{model_path} has no LiteRT export, which serving runs. Export it: {command}")
    if section.get("source_sha256") != card.get("sha256"):
        raise ModelFileError(f"The LiteRT files of {model_path} were exported from another version of it "
                             f"(sha256 {str(section.get('source_sha256'))[:12]}..., the model is "
                             f"{str(card.get('sha256'))[:12]}...). Export it again: {command}")
    for graph in ("forward", "saliency"):
        entry = section.get(graph)
        if not entry:
            continue
        path = model_path.with_name(entry["file"])
        if not path.is_file():
            raise ModelFileError(f"The LiteRT file {path} named in the card is missing. Export it: {command}")
        if sha256_of(path) != entry["sha256"]:
            raise ModelFileError(f"{path} does not match the sha256 in its model's card: it is stale or "
                                 f"was changed. Export it again: {command}")
    return section


def _check_companion(model_path, section):
    """The reliability file a classifier's card names: present and unchanged."""
    if not section or not section.get("file"):
        return
    path = Path(model_path).with_name(section["file"])
    if not path.is_file():
        raise ModelFileError(f"The reliability file {path} named in the card is missing. "
                             f"Rerun: python -m training.fit_reliability --model {model_path}")
    if section.get("sha256") and sha256_of(path) != section["sha256"]:
        raise ModelFileError(f"{path} does not match the sha256 in its model's card; it was "
                             "changed or belongs to another model.")


class ModelFileWatch:
    """Tells whether model files are still the ones checked, for a health check: a cheap
    stat of each model's files per call, the full sha256 check only when one changed."""

    def __init__(self, paths, served=True):
        self.paths = [Path(p) for p in paths]
        self.served = served
        self._checked = {}  # model path -> the stat signature it passed with

    @staticmethod
    def _signature(model_path):
        """Name, size and mtime of the model, its card and its companions (same stem)."""
        return tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns)
                     for p in sorted(model_path.parent.glob(model_path.stem + ".*")) if p.is_file())

    def remember(self):
        """Take the files as they are now as checked (the caller has just checked them)."""
        self._checked = {path: self._signature(path) for path in self.paths}

    def problems(self):
        """A list of reasons, empty when every model file is present and matches its card."""
        found = []
        for path in self.paths:
            signature = self._signature(path)
            if self._checked.get(path) == signature:
                continue
            try:
                card = check_model_file(path, self.served)
                if self.served and str(card.get("task", "")).startswith("classification"):
                    check_served_classifier(path, card)
            except ModelFileError as error:
                found.append(str(error))
                self._checked.pop(path, None)
            else:
                self._checked[path] = signature
        return found
