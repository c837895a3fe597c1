"""The web app's use of the analysis core: one Analyzer per process, files, store rows."""
import hashlib
import logging
import shutil
import threading
import uuid
from dataclasses import dataclass

from skinlesion.analysis import ANALYSIS_MAX_SIDE, Analyzer
from skinlesion.cards import ModelFileError, ModelFileWatch, model_paths
from skinlesion.classify import CalibrationError
from skinlesion.imageio import decode
from skinlesion.scale import read_scales

from .files import AnalysisFiles
from .patients import PatientStore
from .store import new_record

log = logging.getLogger(__name__)

# One analysis at a time per process: LiteRT already uses the worker's cores for one image,
# and running two at once only makes both slower and doubles peak memory.
_analysis_lock = threading.Lock()


DERIVED_IMAGES_BYTES = 24 * 2**20  # overlays, outline, mask, crop and thumbnail of one analysis, with room


class ServiceUnavailable(RuntimeError):
    """The server cannot analyse now (HTTP 503); str(error) is a message for a person."""


class StorageError(ServiceUnavailable):
    """Uploads or overlays could not be written (disk full, folder not writable)."""


class ModelsUnavailable(ServiceUnavailable):
    """This process started without its models (see BOOT_FAILURE)."""


class VisitError(ValueError):
    """The patient or lesion given with an upload cannot be used; str(error) says why (400)."""


@dataclass(frozen=True)
class Visit:
    """Whose lesion an upload shows: a patient identifier, and an existing lesion's id or
    "new" (or nothing: the patient's one lesion, or a first one) with its place."""
    patient: str = ""
    lesion_id: str = ""
    label: str = ""
    site: str = ""
    laterality: str = ""
    view: str = ""
    x: float | None = None
    y: float | None = None


def too_little_space(folders, needed_bytes):
    """A problem for each folder whose disk has less than `needed_bytes` free (an analysis
    would fail to store its files there), or that cannot be read."""
    found = []
    for folder in folders:
        try:
            free = shutil.disk_usage(folder).free
        except OSError as error:
            found.append(f"cannot check the free space of {folder}: {error.strerror or error}")
            continue
        if free < needed_bytes:
            found.append(f"the disk of {folder} is full: {free // 2**20} MB free, an analysis needs up to "
                         f"{needed_bytes // 2**20} MB")
    return found


def new_id():
    return uuid.uuid4().hex


class Engine:
    """The web app's one way to the analysis core, the files and the store."""

    def __init__(self, settings, store):
        self.settings = settings
        self.store = store
        self.files = AnalysisFiles(settings.upload_dir, settings.heatmap_dir, settings.overlay_format)
        self.patients = PatientStore(store.engine)
        self.model_watch = ModelFileWatch(model_paths(settings.models_dir, settings.tasks))
        self.failure = None
        try:
            self.analyzer = Analyzer(settings.models_dir, tasks=settings.tasks, calibration=settings.calibration,
                                     scales=read_scales(settings.scales) if settings.scales else None)
        except (ModelFileError, CalibrationError) as error:
            if not settings.degrade_on_boot_failure:
                raise
            self.analyzer, self.failure = None, str(error)
            log.error("Started WITHOUT MODELS, analyses answer 503 until the file is restored and "
                      "the server restarted: %s", error)
            return
        self.model_watch.remember()  # the Analyzer has just checked them against their cards
        if settings.warm_up:
            self.analyzer.warm_up()

    @property
    def tasks(self):
        return self.analyzer.tasks if self.analyzer else self.settings.tasks

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
        folders = dict.fromkeys(f for f in (self.settings.upload_dir, self.settings.heatmap_dir,
                                            self.settings.database_dir) if f is not None)
        found += too_little_space(folders, self.settings.max_content_length + DERIVED_IMAGES_BYTES)
        if self.failure:
            found.append(f"this worker started without models: {self.failure}")
        return [problem for problem in found if problem]

    def analyze_upload(self, data, task, original_name="", case_ref="", note="", owner=None, visit=None):
        """Decode, analyse, write files, then the row. visit: a `Visit` saying whose lesion this
        is (none: a loose image). Raises ImageError, ValueError, StorageError."""
        # Decoded (and shrunk to the analysis size) before anything is trusted or written;
        # the upload's own bytes are kept unchanged.
        upload = decode(data, max_side=ANALYSIS_MAX_SIDE)
        if self.analyzer is None:
            raise ModelsUnavailable("Analyses are paused: the server cannot load its models. "
                                    "Stored analyses can still be viewed. Please tell the administrator.")
        self.analyzer.classifier(task)  # refuses a task that is not loaded
        with _analysis_lock:
            result = self.analyzer.analyze(upload, task)
        lesion_id = self.lesion_of_visit(visit or Visit(), owner, upload.dicom) if visit or upload.dicom else None
        analysis_id = new_id()
        files = self._write_files(analysis_id, data, result)
        record = new_record(
            result.summary(), id=analysis_id, files=files, original_name=(original_name or "")[:200],
            image_sha256=hashlib.sha256(data).hexdigest(),
            case_ref=(case_ref or "").strip() or None, note=(note or "").strip() or None,
            owner=owner, lesion_id=lesion_id)
        try:
            stored = self.store.add(record)
        except Exception:
            self.remove_files(files)
            raise
        if result.features is not None:  # for the clinic's own similar confirmed cases
            self.patients.add_features(analysis_id, self.analyzer.classifier(task).card["sha256"], result.features)
        return stored

    def lesion_of_visit(self, visit, owner, facts=None):
        """The lesion an upload is a visit of: the one named, or the patient's (made if new).
        A DICOM file's own patient and body site (`facts`, skinlesion.dicom.facts) fill what the
        form left empty. Raises VisitError."""
        if visit.lesion_id and visit.lesion_id != "new":
            found = self.visible_lesion(visit.lesion_id, owner)
            if found is None:
                raise VisitError("That lesion does not exist, or is not yours to add to.")
            if visit.patient and visit.patient != found[1]["identifier"]:
                raise VisitError(f"That lesion is patient {found[1]['identifier']}'s, not {visit.patient}'s.")
            return found[0]["id"]
        facts = facts or {}
        identifier = visit.patient or facts.get("patient_id")
        if not identifier:
            return None
        patient = self.patients.find_or_add_patient(identifier[:100], owner)
        lesions = self.patients.lesions_of(patient["id"])
        site = visit.site or facts.get("body_site")
        if visit.lesion_id != "new" and not site and lesions:
            if len(lesions) == 1:
                return lesions[0]["id"]  # a follow-up of the patient's one lesion
            raise VisitError(f"Patient {patient['identifier']} has {len(lesions)} lesions: choose the one this "
                             "image shows, or a new lesion.")
        try:
            lesion = self.patients.add_lesion(patient["id"], visit.label, site,
                                              visit.laterality or facts.get("laterality"), visit.view, visit.x, visit.y)
        except ValueError as error:
            raise VisitError(str(error)) from None
        return lesion["id"]

    def clinic_similar(self, record, user, k=8):
        """The clinic's confirmed visits nearest to this analysis (never of its own lesion),
        those this user may see; [] when none or the analysis kept no features."""
        found = self.patients.features_of(record["id"])
        if found is None:
            return []
        model_sha256, vector = found
        gallery = self.patients.confirmed_gallery(model_sha256, self._owner_filter(user), record.get("lesion_id"))
        return gallery.nearest(vector, k=k)

    def visible_patient(self, patient_id, user):
        patient = self.patients.patient(patient_id)
        return patient if self._may_see(patient, user) else None

    def visible_lesion(self, lesion_id, user):
        """(lesion, its patient) if this user may see them, else None."""
        lesion = self.patients.lesion(lesion_id)
        patient = lesion and self.visible_patient(lesion["patient_id"], user)
        return (lesion, patient) if patient else None

    def visible_patients(self, user, search=None):
        return self.patients.patients(owner=self._owner_filter(user), search=search)

    def delete_patient(self, patient):
        for files in self.patients.delete_patient(patient["id"]):
            self.remove_files(files)

    def _write_files(self, analysis_id, data, result):
        try:
            return self.files.write(analysis_id, data, result)
        except OSError as error:
            raise StorageError("The analysis could not be saved: the server's storage is full or "
                               "not writable. Please tell the administrator.") from error

    def visible(self, analysis_id, user):
        """The analysis if this user may see it (anyone when accounts are off), else None."""
        record = self.store.get(analysis_id)
        if not self._may_see(record, user):
            return None
        return record

    def _may_see(self, row, user):
        """A stored analysis or batch is anyone's when accounts are off, else its owner's."""
        return row is not None and (not self.settings.login_required or row["owner"] == user)

    def _owner_filter(self, user):
        return user if self.settings.login_required else None

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
        return self.files.path(record["files"], kind)

    def remove_files(self, files):
        self.files.remove(files)

    def delete(self, record):
        if self.store.delete(record["id"]):  # only the request that removed the row removes the files
            self.remove_files(record["files"])
