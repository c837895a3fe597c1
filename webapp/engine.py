"""The web app's use of the analysis core: one Analyzer per process, files, store rows."""
import hashlib
import logging
import threading
import uuid
from pathlib import Path

from heatmap import EncodingError
from skinlesion.analysis import ANALYSIS_MAX_SIDE, Analyzer
from skinlesion.cards import ModelFileError, ModelFileWatch, model_paths
from skinlesion.classify import CalibrationError
from skinlesion.imageio import ImageError, image_dimensions, load_image

log = logging.getLogger(__name__)

# One analysis at a time per process: TensorFlow already uses every core for one image,
# and running two at once only makes both slower and doubles peak memory.
_analysis_lock = threading.Lock()


class ServiceUnavailable(RuntimeError):
    """The server cannot analyse now (HTTP 503); str(error) is a message for a person."""


class StorageError(ServiceUnavailable):
    """Uploads or overlays could not be written (disk full, folder not writable)."""


class ModelsUnavailable(ServiceUnavailable):
    """This process started without its models (see BOOT_FAILURE)."""


class ResultImageError(ImageError):
    """The overlays of an analysis could not be encoded (never a storage problem)."""
    status = 422


def _size_of(data):
    size = image_dimensions(data)
    return {"width": size[0], "height": size[1]} if size else None


def new_id():
    return uuid.uuid4().hex


class Engine:
    def __init__(self, config, store):
        self.config = config
        self.store = store
        self.model_watch = ModelFileWatch(model_paths(config["MODELS_DIR"], config["TASKS"]))
        self.failure = None
        try:
            self.analyzer = Analyzer(config["MODELS_DIR"], tasks=config["TASKS"],
                                     calibration=config.get("CALIBRATION"))
        except (ModelFileError, CalibrationError) as error:
            if config.get("BOOT_FAILURE") != "degrade":
                raise
            self.analyzer, self.failure = None, str(error)
            log.error("Started WITHOUT MODELS, analyses answer 503 until the file is restored and "
                      "the server restarted: %s", error)
            return
        self.model_watch.remember()  # the Analyzer has just checked them against their cards
        if config.get("WARM_UP", True):
            self.analyzer.warm_up()

    @property
    def tasks(self):
        return self.analyzer.tasks if self.analyzer else tuple(self.config["TASKS"])

    def versions(self):
        return self.analyzer.versions() if self.analyzer else {}

    def measurement_noise(self):
        """How much measurements move between two photographs of an unchanged lesion
        (training.measurement_noise, in the segmenter's card), or None."""
        if self.analyzer is None:
            return None
        return self.analyzer.segmenter.card.get("measurement_noise")

    def problems(self):
        """What would stop this server from analysing, or a restarted worker from starting."""
        found = [self.store.check()] + [p for p in self.model_watch.problems() if p != self.failure]
        if self.failure:
            found.append(f"this worker started without models: {self.failure}")
        return [problem for problem in found if problem]

    def analyze_upload(self, data, task, original_name="", case_ref="", note="", owner=None):
        """Decode, analyse, write files, then the row. Raises ImageError, ValueError, StorageError."""
        # Decoded (and shrunk to the analysis size) before anything is trusted or written;
        # the upload's own bytes are kept unchanged.
        image = load_image(data, max_side=ANALYSIS_MAX_SIDE)
        if self.analyzer is None:
            raise ModelsUnavailable("Analyses are paused: the server cannot load its models. "
                                    "Stored analyses can still be viewed. Please tell the administrator.")
        self.analyzer.classifier(task)  # refuses a task that is not loaded
        with _analysis_lock:
            result = self.analyzer.analyze(image, task)
        analysis_id = new_id()
        files = self._write_files(analysis_id, data, result)
        summary = result.summary()
        record = {
            "id": analysis_id, "task": task, "prediction": result.prediction,
            "probabilities": summary["probabilities"],
            "malignant_probability": result.malignant_probability,
            "suspicious": int(result.suspicious), "low_confidence": int(result.low_confidence),
            "lesion": summary["lesion"], "models": summary["models"], "files": files,
            "summary": {key: summary[key] for key in ("referral_threshold", "referral_basis", "reliability", "warnings",
                                                      "gradcam_empty", "image_size")}
            | {"ranked": result.ranked, "original_size": _size_of(data)},
            "original_name": (original_name or "")[:200], "image_sha256": hashlib.sha256(data).hexdigest(),
            "case_ref": (case_ref or "").strip()[:100] or None, "note": (note or "").strip()[:2000] or None,
            "owner": owner,
        }
        try:
            return self.store.add(record)
        except Exception:
            self.remove_files(files)
            raise

    def _write_files(self, analysis_id, data, result):
        upload_dir, heatmap_dir = Path(self.config["UPLOAD_DIR"]), Path(self.config["HEATMAP_DIR"])
        files = {}
        try:
            upload_dir.mkdir(parents=True, exist_ok=True)
            upload = upload_dir / f"{analysis_id}.upload"
            upload.write_bytes(data)  # the bytes as received, for audit; never served raw
            files["upload"] = upload.name
            written = result.save_images(heatmap_dir, analysis_id, self.config.get("OVERLAY_FORMAT", "jpg"))
            files.update({kind: Path(path).name for kind, path in written.items()})
        except EncodingError as error:
            self._remove_partial(analysis_id)
            raise ResultImageError("The result images could not be made for this image "
                                   f"({error}). Nothing was stored.") from None
        except OSError as error:
            self._remove_partial(analysis_id)
            raise StorageError("The analysis could not be saved: the server's storage is full or "
                               "not writable. Please tell the administrator.") from error
        return files

    def _remove_partial(self, analysis_id):
        """Whatever part of a failed analysis was written goes: the upload and its images."""
        (Path(self.config["UPLOAD_DIR"]) / f"{analysis_id}.upload").unlink(missing_ok=True)
        for leftover in Path(self.config["HEATMAP_DIR"]).glob(f"{analysis_id}_*"):
            leftover.unlink(missing_ok=True)

    def visible(self, analysis_id, user):
        """The analysis if this user may see it (anyone when accounts are off), else None."""
        record = self.store.get(analysis_id)
        if not self._may_see(record, user):
            return None
        return record

    def _may_see(self, row, user):
        """A stored analysis or batch is anyone's when accounts are off, else its owner's."""
        return row is not None and (not self.config.get("LOGIN_REQUIRED") or row["owner"] == user)

    def _owner_filter(self, user):
        return user if self.config.get("LOGIN_REQUIRED") else None

    def visible_list(self, user, case_ref=None, limit=200, offset=0):
        return self.store.list(case_ref=case_ref, owner=self._owner_filter(user), limit=limit, offset=offset)

    def visible_count(self, user, case_ref=None):
        return self.store.count(case_ref=case_ref, owner=self._owner_filter(user))

    def add_batch(self, records, failures, owner):
        batch_id = new_id()
        self.store.add_batch(batch_id, owner, [r["id"] for r in records], failures)
        return batch_id

    def visible_batch(self, batch_id, user):
        """(batch, its analyses that still exist) if this user may see it, else None."""
        batch = self.store.get_batch(batch_id)
        if not self._may_see(batch, user):
            return None
        records = [r for r in (self.visible(i, user) for i in batch["analyses"]) if r is not None]
        return batch, records

    def file_path(self, record, kind):
        name = record["files"].get(kind)
        if not name:
            return None
        folder = self.config["UPLOAD_DIR"] if kind == "upload" else self.config["HEATMAP_DIR"]
        return Path(folder) / name

    def remove_files(self, files):
        for kind, name in files.items():
            folder = self.config["UPLOAD_DIR"] if kind == "upload" else self.config["HEATMAP_DIR"]
            (Path(folder) / name).unlink(missing_ok=True)

    def delete(self, record):
        if self.store.delete(record["id"]):  # only the request that removed the row removes the files
            self.remove_files(record["files"])
