"""How far to trust one analysis: is the image dermoscopy at all, how unlike the training
images it is, and how uncertain its calibrated probabilities are.

Everything here belongs to one classifier and is fitted for it by
`python -m training.fit_reliability` (temperature, feature statistics, the dermoscopy
gate, the thresholds), stored in the .npz file its card's "reliability" section names,
with that file's sha256. A classifier whose card has no such section runs uncalibrated
(temperature 1) with no gate and no unusual-image score.
"""
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .imageio import ImageError

STATE_LABELS = {"confident": "Confident", "uncertain": "Uncertain", "unusual": "Unusual image",
                "no_lesion": "No lesion found", "refused": "Not analysed"}
UNUSUAL_MESSAGE = ("This image differs from the images the models were trained on; their "
                   "figures are less reliable here.")
NOT_DERMOSCOPY_MESSAGE = ("This does not look like a dermoscopic image of skin, so it was not "
                          "analysed. Lesion Lens only reads dermoscopy (a close-up taken through "
                          "a dermatoscope).")
GREYSCALE_MESSAGE = ("This image has no colour (a greyscale picture such as an X-ray or a scan), "
                     "so it is not a dermoscopic image of skin and was not analysed.")


class NotDermoscopyError(ImageError):
    """An upload that is not a dermoscopic image of skin: refused before any diagnosis."""
    status = 422


@dataclass
class Reliability:
    """One analysis' reliability state, with its reason in plain words."""
    state: str
    ood_score: float | None
    unusual_image: bool
    uncertain: bool
    message: str
    reasons: list = field(default_factory=list)

    def as_dict(self):
        return asdict(self)


def colourfulness(image):
    """Hasler & Suesstrunk's colourfulness of an RGB uint8 image (0 for greys; dermoscopy
    of skin is well above it), on a subsample: it needs no more."""
    step = max(1, int(np.sqrt(image.shape[0] * image.shape[1] / 40000)))
    rgb = image[::step, ::step].astype(np.float32)
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def softmax(logits, temperature=1.0):
    scaled = np.asarray(logits, np.float64) / temperature
    scaled -= scaled.max(-1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(-1, keepdims=True)


def calibrated_probabilities(view_logits, temperature=1.0):
    """(views, N, classes) logits -> (N, classes): the mean over the test-time views of the
    temperature-scaled softmax."""
    return softmax(view_logits, temperature).mean(0)


class FeatureDensity:
    """A Gaussian of the classifier's pooled features: Mahalanobis distance in the leading
    principal components plus the residual's distance at its mean variance, as a root mean
    square per feature dimension (about 1 for a typical training image)."""

    def __init__(self, mean, basis, variances, residual_variance):
        self.mean = np.asarray(mean, np.float32)
        self.basis = np.asarray(basis, np.float32)  # (components, features)
        self.variances = np.asarray(variances, np.float32)
        self.residual_variance = float(residual_variance)

    @classmethod
    def fit(cls, features, components=64):
        features = np.asarray(features, np.float64)
        mean = features.mean(0)
        centred = features - mean
        _, singular, vectors = np.linalg.svd(centred, full_matrices=False)
        variances = singular ** 2 / max(len(features) - 1, 1)
        components = min(components, len(variances) - 1)
        # The variance left outside the components, per remaining dimension (with fewer
        # images than dimensions the remaining spectrum is shorter than the dimensions).
        residual = variances[components:].sum() / (features.shape[1] - components)
        return cls(mean, vectors[:components], np.maximum(variances[:components], 1e-9),
                   max(float(residual), 1e-9))

    def score(self, features):
        centred = np.atleast_2d(np.asarray(features, np.float32)) - self.mean
        projected = centred @ self.basis.T
        residual = centred - projected @ self.basis
        squared = (projected ** 2 / self.variances).sum(1) + (residual ** 2).sum(1) / self.residual_variance
        return np.sqrt(squared / self.mean.size)

    def arrays(self, prefix):
        return {f"{prefix}_mean": self.mean, f"{prefix}_basis": self.basis,
                f"{prefix}_variances": self.variances,
                f"{prefix}_residual_variance": np.float32(self.residual_variance)}

    @classmethod
    def from_arrays(cls, arrays, prefix):
        return cls(arrays[f"{prefix}_mean"], arrays[f"{prefix}_basis"], arrays[f"{prefix}_variances"],
                   float(arrays[f"{prefix}_residual_variance"]))


class DermoscopyGate:
    """Logistic regression on the whole image's features: the probability that an image is
    not dermoscopy (trained against varied non-dermoscopic images)."""

    def __init__(self, mean, scale, coef, intercept):
        self.mean, self.scale = np.asarray(mean, np.float32), np.asarray(scale, np.float32)
        self.coef, self.intercept = np.asarray(coef, np.float32), float(intercept)

    def probability(self, features):
        standardised = (np.atleast_2d(features) - self.mean) / self.scale
        return 1.0 / (1.0 + np.exp(-(standardised @ self.coef + self.intercept)))

    def arrays(self):
        return {"gate_mean": self.mean, "gate_scale": self.scale, "gate_coef": self.coef,
                "gate_intercept": np.float32(self.intercept)}

    @classmethod
    def from_arrays(cls, arrays):
        return cls(arrays["gate_mean"], arrays["gate_scale"], arrays["gate_coef"],
                   float(arrays["gate_intercept"]))


class ReliabilityModel:
    """The fitted parts of one classifier's reliability (see the module docstring).

    settings (the card's "reliability" section): temperature, thresholds {unusual_ood,
    gate_refuse, gate_mark, image_refuse, image_mark, min_colourfulness}, uncertain
    {margin, grey_zone}.
    """

    def __init__(self, settings, crop_density, image_density, gate):
        self.settings = settings
        self.crop_density, self.image_density, self.gate = crop_density, image_density, gate

    # Read from the settings each time: the fitting script sets them one after another.
    @property
    def temperature(self):
        return float(self.settings.get("temperature", 1.0))

    @property
    def thresholds(self):
        return self.settings["thresholds"]

    @property
    def uncertain_rule(self):
        return self.settings["uncertain"]

    @classmethod
    def load(cls, model_path, settings):
        """From the card's section (cards.check_model_file has checked the file's sha256)."""
        path = Path(model_path).with_name(settings["file"])
        with np.load(path) as arrays:
            return cls(settings, FeatureDensity.from_arrays(arrays, "crop"),
                       FeatureDensity.from_arrays(arrays, "image"), DermoscopyGate.from_arrays(arrays))

    def save_arrays(self, path):
        np.savez(path, **self.crop_density.arrays("crop"), **self.image_density.arrays("image"),
                 **self.gate.arrays())

    # --- before diagnosing ---------------------------------------------------------

    def screen(self, image, image_features):
        """Is this dermoscopy? Returns (refusal message or None, [reasons to mark it unusual])."""
        return self.screen_features(colourfulness(image), image_features)

    def screen_features(self, colour, image_features):
        """`screen` from the image's colourfulness and whole-image features."""
        gate = float(self.gate.probability(image_features)[0])
        distance = float(self.image_density.score(image_features)[0])
        t = self.thresholds
        if colour < t["min_colourfulness"]:
            return GREYSCALE_MESSAGE, []
        if gate > t["gate_refuse"] or distance > t["image_refuse"]:
            return NOT_DERMOSCOPY_MESSAGE, []
        marks = []
        if gate > t["gate_mark"]:
            marks.append("it looks partly unlike dermoscopy")
        if distance > t["image_mark"]:
            marks.append("the whole image is unlike the training images")
        return None, marks

    # --- after the classifier ------------------------------------------------------

    def ood_score(self, crop_features):
        return float(self.crop_density.score(crop_features)[0])

    def is_uncertain(self, probabilities, malignant, referral_threshold):
        """Reasons for "uncertain" (see `uncertain_rule`), in words."""
        close, grey = uncertain_rule(np.atleast_2d(probabilities), np.atleast_1d(malignant),
                                     referral_threshold, **self.uncertain_rule)
        return ([("the two most likely diagnoses are close")] if close[0] else []) + \
            (["the malignant probability is just under the referral threshold"] if grey[0] else [])

    def assess(self, probabilities, malignant, referral_threshold, crop_features, marks=()):
        """After the classifier: (unusual-image score, unusual?, its reasons, uncertain reasons)."""
        score = self.ood_score(crop_features)
        reasons = list(marks)
        if score > self.thresholds["unusual_ood"]:
            reasons.insert(0, "its features are far from the training images'")
        uncertain = self.is_uncertain(probabilities, malignant, referral_threshold)
        return score, bool(reasons), reasons, uncertain


def uncertain_rule(probabilities, malignant, referral_threshold, margin, grey_zone):
    """The "uncertain" rule on a batch: (the two leading classes within `margin`, the
    malignant probability in [grey_zone x threshold, threshold): where a missed melanoma
    most often sits). Both boolean arrays; the fitting script searches margin and grey_zone."""
    top = np.sort(probabilities, axis=1)[:, ::-1]
    close = (top[:, 0] - top[:, 1] < margin) if top.shape[1] > 1 else np.zeros(len(top), bool)
    if referral_threshold is None:
        return close, np.zeros(len(top), bool)
    grey = (malignant >= grey_zone * referral_threshold) & (malignant < referral_threshold)
    return close, grey


def state_of(lesion_found, unusual, unusual_reasons, uncertain_reasons, ood_score, lesion_message=""):
    """The one reliability state shown with the result, most serious first."""
    if not lesion_found:
        state, message = "no_lesion", ((lesion_message or "No lesion was found in this image.")
                                       + " The figures below describe the whole image and are "
                                         "not a reading of a lesion.")
    elif unusual:
        state, message = "unusual", UNUSUAL_MESSAGE
    elif uncertain_reasons:
        state = "uncertain"
        message = ("Uncertain: " + " and ".join(uncertain_reasons)
                   + ". Treat the diagnosis as undecided; the lesion deserves a closer look.")
    else:
        state, message = "confident", "No reliability warning for this image."
    return Reliability(state, ood_score, bool(unusual), bool(uncertain_reasons), message,
                       list(unusual_reasons) + list(uncertain_reasons))
