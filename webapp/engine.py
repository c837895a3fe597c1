"""The web app's use of the analysis core: one Analyzer per process, files, store rows."""
import hashlib
import threading
import uuid
from pathlib import Path

from skinlesion.analysis import Analyzer

# One analysis at a time per process: TensorFlow already uses every core for one image,
# and running two at once only makes both slower and doubles peak memory.
_analysis_lock = threading.Lock()


class StorageError(RuntimeError):
    """Uploads or overlays could not be written (disk full, folder not writable)."""


def new_id():
    return uuid.uuid4().hex


class Engine:
    def __init__(self, config, store):
        self.config = config
        self.store = store
        self.analyzer = Analyzer(config["MODELS_DIR"], tasks=config["TASKS"],
                                 calibration=config.get("CALIBRATION"))
        if config.get("WARM_UP", True):
            self.analyzer.warm_up()

    @property
    def tasks(self):
        return self.analyzer.tasks

    def analyze_upload(self, data, task, original_name="", case_ref="", note="", owner=None):
        """Decode, analyse, write files, then the row. Raises ImageError, ValueError, StorageError."""
        from skinlesion.imageio import load_image
        image = load_image(data)  # decoded before anything is trusted or written
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
            | {"ranked": result.ranked},
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
        except OSError as error:
            # Whatever part was written goes: the upload and every file named after the id.
            (upload_dir / f"{analysis_id}.upload").unlink(missing_ok=True)
            for leftover in heatmap_dir.glob(f"{analysis_id}_*"):
                leftover.unlink(missing_ok=True)
            raise StorageError("The analysis could not be saved: the server's storage is full or "
                               "not writable. Please tell the administrator.") from error
        return files

    def visible(self, analysis_id, user):
        """The analysis if this user may see it (anyone when accounts are off), else None."""
        record = self.store.get(analysis_id)
        if record is None or (self.config.get("LOGIN_REQUIRED") and record["owner"] != user):
            return None
        return record

    def visible_list(self, user, case_ref=None):
        owner = user if self.config.get("LOGIN_REQUIRED") else None
        return self.store.list(case_ref=case_ref, owner=owner)

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
        self.store.delete(record["id"])
        self.remove_files(record["files"])

    def sweep_orphans(self):
        """Files with no row (a crash between writing files and the row) are removed."""
        known = self.store.all_file_names()
        removed = 0
        for folder in (self.config["UPLOAD_DIR"], self.config["HEATMAP_DIR"]):
            for path in Path(folder).glob("*"):
                if path.is_file() and not path.name.startswith(".") and path.name not in known:
                    path.unlink(missing_ok=True)
                    removed += 1
        return removed
