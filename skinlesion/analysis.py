"""The whole analysis of one image, in named stages:

    decode -> segment -> read (crop, classify, gate, explain: Classifier.read)
           -> measure -> reliability state -> similar cases -> Analysis

`Analyzer` loads every model once (checking each file against its card) and is then
called per image by the web app, the batch CLI and the evaluation script alike.
"""
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .cards import SEGMENTER_FILE, card_digest, check_served_classifier, classifier_file
from .classes import TASKS, task_classes
from .classify import apply_site_calibration, for_site, load_classifier, read_site_calibration
from .imageio import Decoded, decode, downscale
from .measure import measure_lesion
from .reliability import NotDermoscopyError, Reliability, state_of
from .runtime import SERVING_RUNTIME
from .scale import in_millimetres, scale_of
from .segment import load_segmenter
from .similar import Gallery, gallery_file

# Images are analysed with their longer side at most this: the models see 256 px or less,
# the page shows ~800 (1,024 enlarged), and the work of every step that is not a model
# (colour constancy, masks, measurements, overlays and their encoding) grows with the
# pixels. The upload itself is kept as it was sent.
ANALYSIS_MAX_SIDE = 1024
LOW_CONFIDENCE = 0.5  # without fitted reliability parts: top class under this is "uncertain"


@dataclass
class Analysis:
    task: str
    image: np.ndarray  # decoded, EXIF-oriented RGB, at most ANALYSIS_MAX_SIDE a side
    original_size: dict  # {"width", "height"} of the image as given, as shown (EXIF-rotated)
    mask: np.ndarray  # bool, the image's own size: the outline shown and measured
    lesion_found: bool
    lesion_message: str
    outline_problems: list  # why the outline and its measurements are unreliable ([]: none found)
    region_box: tuple | None  # where the classifier input was cut from (None: whole image)
    classifier_input: np.ndarray
    probabilities: dict  # code -> probability, in the model's class order
    ranked: list  # rows sorted by probability, with display names
    prediction: str
    malignant_probability: float
    referral_threshold: float | None
    referral_basis: dict | None  # where the threshold was chosen and what it did elsewhere
    suspicious: bool
    low_confidence: bool  # kept for stored records and the API: the same as reliability.uncertain
    reliability: Reliability
    measurements: dict | None
    model_versions: dict
    gradcam: np.ndarray | None = None  # [0, 1] at the classifier input's size
    saliency: np.ndarray | None = None
    gradcam_empty: bool = False
    warnings: list = field(default_factory=list)
    similar: list | None = None  # the nearest reference cases (skinlesion.similar); None: no gallery
    features: np.ndarray | None = None  # the classifier's pooled features of the crop (not in the summary)

    def summary(self):
        """Everything but the arrays, JSON-ready: the one form an analysis takes outside
        the core (stored by the web app, the API's answer, the CLI's rows all start here)."""
        return {"task": self.task, "prediction": self.prediction,
                "probabilities": {k: round(v, 6) for k, v in self.probabilities.items()},
                "ranked": self.ranked,
                "malignant_probability": round(self.malignant_probability, 6),
                "referral_threshold": self.referral_threshold, "referral_basis": self.referral_basis,
                "suspicious": self.suspicious,
                "low_confidence": self.low_confidence, "reliability": self.reliability.as_dict(),
                "lesion": {"found": self.lesion_found, "message": self.lesion_message,
                           "outline_problems": self.outline_problems,
                           "area_fraction": round(float(self.mask.mean()), 6),
                           "measurements": self.measurements},
                "gradcam_empty": self.gradcam_empty, "warnings": list(self.warnings),
                "similar": self.similar,
                "models": self.model_versions,
                "image_size": {"height": int(self.image.shape[0]), "width": int(self.image.shape[1])},
                "original_size": self.original_size}


def model_version(card):
    """Which model and which revision of its card: sha256 names the weights, card the card."""
    return {"name": card.get("name"), "version": card.get("version"), "file": card.get("file"),
            "sha256": (card.get("sha256") or "")[:12], "card": card_digest(card)}


class Analyzer:
    """Loads the U-Net and the classifiers once; analyses images one at a time."""

    def __init__(self, models_dir="models", tasks=tuple(TASKS), calibration=None, runtime=None, scales=None):
        """calibration: a site calibration file (training.calibrate) for one of the tasks.
        runtime: skinlesion.runtime's name for what runs the models (default LiteRT).
        scales: a clinic's dermatoscope fields of view (skinlesion.scale.read_scales), for mm."""
        models_dir = Path(models_dir)
        self.scales = scales
        self.segmenter = load_segmenter(models_dir / SEGMENTER_FILE, runtime)
        self.classifiers = {}
        for task in tasks:
            task_classes(task)  # refuses an unknown task name
            self.classifiers[task] = load_classifier(models_dir / classifier_file(task), runtime)
            if (runtime or SERVING_RUNTIME) == SERVING_RUNTIME:  # evaluation may run a model not refitted yet
                check_served_classifier(models_dir / classifier_file(task), self.classifiers[task].card)
        # once: the cards do not change while loaded (hashing one takes about half a millisecond)
        self._versions = {"segmenter": model_version(self.segmenter.card),
                          **{task: model_version(c.card) for task, c in self.classifiers.items()}}
        self.galleries = {task: Gallery.load(path, c.card["sha256"]) for task, c in self.classifiers.items()
                          if (path := models_dir / gallery_file(task)).is_file()}
        if calibration:
            self.calibrate(calibration)

    def calibrate(self, path):
        """Apply a site calibration file to the classifier of its task."""
        site = read_site_calibration(path)
        return apply_site_calibration(for_site(site, self.classifiers, path), site, path)

    @property
    def tasks(self):
        return tuple(self.classifiers)

    def versions(self):
        return dict(self._versions)

    def warm_up(self):
        """Run every compiled function once so the first real request is not slow."""
        dummy = np.full((150, 200, 3), 128, np.uint8)
        dummy[50:100, 70:130] = 60
        for task in self.classifiers:
            self.analyze(dummy, task, screen=False)

    def classifier(self, task):
        if task not in self.classifiers:
            raise ValueError(f"Task {task!r} is not loaded; available: {', '.join(self.classifiers)}.")
        return self.classifiers[task]

    def segment(self, image):
        return self.segmenter.segment_image(image)

    def analyze(self, source, task="7class", explain=True, screen=True):
        """source: an upload decoded once (skinlesion.imageio.Decoded: pixels, size, header),
        bytes, a path, a file object, or an RGB uint8 array (no scale known). Raises
        ImageError, and NotDermoscopyError (an ImageError) for an image that is not dermoscopy."""
        classifier = self.classifier(task)
        upload = as_decoded(source)
        image = downscale(upload.pixels, ANALYSIS_MAX_SIDE)
        segmentation = self.segment(image)
        gate = self._gate(classifier, image) if screen else None
        reading = classifier.read(image, segmentation.mask if segmentation.found else None, explain, gate)
        measurements = self._measurements(image, segmentation, upload)
        reliability = self._reliability(classifier, reading, segmentation, measurements)
        gallery = self.galleries.get(task)
        similar = gallery.nearest(reading.features) if gallery is not None and segmentation.found else None
        return Analysis(
            task=task, image=image, original_size=upload.original_size, mask=segmentation.outline,
            lesion_found=segmentation.found,
            lesion_message=segmentation.reason, outline_problems=list(segmentation.outline_problems),
            region_box=reading.region_box, classifier_input=reading.crop,
            probabilities={code: float(p) for code, p in zip(classifier.classes, reading.probabilities)},
            ranked=classifier.describe(reading.probabilities),
            prediction=classifier.classes[int(np.argmax(reading.probabilities))],
            malignant_probability=reading.malignant_probability, referral_threshold=classifier.referral_threshold,
            referral_basis=classifier.referral, suspicious=classifier.flags(reading.malignant_probability),
            low_confidence=reliability.uncertain, reliability=reliability, measurements=measurements,
            model_versions={"segmenter": self._versions["segmenter"], "classifier": self._versions[task]},
            gradcam=reading.gradcam, saliency=reading.saliency, gradcam_empty=reading.gradcam_empty,
            warnings=[] if reliability.state == "confident" else [reliability.message], similar=similar,
            features=reading.features if segmentation.found else None)

    @staticmethod
    def _gate(classifier, image):
        """The dermoscopy gate, run on the whole image's features from the classifier's pass
        (None for a model without fitted reliability parts): refuses, or says what it noted."""
        checks = classifier.reliability
        if checks is None:
            return None

        def gate(image_features):
            refusal, marks = checks.screen(image, image_features)
            if refusal:
                raise NotDermoscopyError(refusal)
            return marks
        return gate

    def _measurements(self, image, segmentation, upload):
        """The outline's measurements, in mm where the upload's scale is known; None without a lesion."""
        measurements = measure_lesion(image, segmentation.outline) if segmentation.found else None
        return in_millimetres(measurements, scale_of(upload, self.scales), max(image.shape[:2]),
                              max(upload.width, upload.height))

    @staticmethod
    def _reliability(classifier, reading, segmentation, measurements):
        """The reading's reliability state: the fitted checks, or only the plain confidence rule."""
        checks, probabilities = classifier.reliability, reading.probabilities
        if checks is not None:
            ood_score, unusual, unusual_reasons, uncertain_reasons = checks.assess(
                probabilities, reading.malignant_probability, classifier.referral_threshold,
                reading.features, reading.gate_marks)
        else:
            ood_score, unusual, unusual_reasons = None, False, []
            uncertain_reasons = (["no class reaches 50% probability"]
                                 if float(probabilities.max()) < LOW_CONFIDENCE else [])
        if segmentation.found and measurements is None:  # a sliver: its crop is no sure lesion either
            uncertain_reasons = [*uncertain_reasons, "the lesion's outline is too thin to measure"]
        return state_of(segmentation.found, unusual, unusual_reasons, uncertain_reasons,
                        ood_score, segmentation.reason)


def as_decoded(source):
    """Any source analyze() takes, as a Decoded (an array carries no header: no scale)."""
    if isinstance(source, Decoded):
        return source
    if isinstance(source, np.ndarray):
        return Decoded(source, source.shape[1], source.shape[0])
    return decode(source, max_side=ANALYSIS_MAX_SIDE)
