"""A loaded classifier with its card: classes, crop mode, preprocessing, referral threshold."""
from dataclasses import dataclass

import numpy as np

from .classes import DISPLAY_NAMES, MALIGNANT
from .flips import tta_views
from .inputs import at_trained_resolution
from .layer_names import LOGITS_LAYER, POOLED_LAYER
from .preprocess import preprocess
from .regions import classifier_input, lesion_box
from .reliability import calibrated_probabilities


def tta_probabilities(predict, inputs, mode):
    """Average `predict` (a batch -> probabilities callable) over the test-time views."""
    inputs = np.asarray(inputs, np.float32)
    views = tta_views(inputs, mode)
    probabilities = np.asarray(predict(views))
    return probabilities.reshape(len(views) // len(inputs), len(inputs), -1).mean(0)


def referral_basis(card):
    """The referral threshold and what it did where it was measured, from the card: on the
    validation images it was chosen on, and on each external (other-clinic) set."""
    referral = card.get("referral") or {}
    if referral.get("malignant_probability") is None:
        return None
    external = []
    for source, metrics in (card.get("external_validation") or {}).items():
        figures = metrics.get("referral") or {}
        counts = metrics.get("class_counts") or {}
        if figures.get("melanoma_sensitivity") is not None:
            external.append({"source": source, "melanomas": counts.get("mel"), "nevi": counts.get("nv"),
                             "melanoma_sensitivity": figures["melanoma_sensitivity"],
                             "nevi_flagged_share": figures.get("nevi_flagged_share")})
    return {"malignant_probability": referral["malignant_probability"],
            "chosen_for_melanoma_sensitivity": referral.get("chosen_for_melanoma_sensitivity"),
            "chosen_on": referral.get("chosen_on", "the validation split"),
            "validation_melanoma_sensitivity": referral.get("melanoma_sensitivity"),
            "validation_nevi_flagged_share": referral.get("nevi_flagged_share"),
            "external": external}


@dataclass
class Reading:
    """What a classifier makes of one image's lesion (Classifier.read)."""
    crop: np.ndarray  # the classifier's input, cut from the image
    region_box: tuple | None  # where the crop was cut (None: the whole image)
    probabilities: np.ndarray  # calibrated, over the test-time views, summing to 1, in the card's class order
    malignant_probability: float
    features: np.ndarray  # the crop's pooled features (unusual-image score, similar cases)
    gate_marks: list  # what the dermoscopy gate noted without refusing
    gradcam: np.ndarray | None = None  # [0, 1] at the crop's size, of the most probable class
    saliency: np.ndarray | None = None
    gradcam_empty: bool = False


class Classifier:
    """A classifier's graphs (skinlesion.runtime) with its card: classes, crop, views, threshold."""

    def __init__(self, graphs, reliability=None):
        from .explain import Explainer
        from .runtime import ModelSpec
        self.graphs = graphs
        self.card = card = graphs.card
        spec = ModelSpec.from_card(card)
        self.classes = tuple(entry["code"] for entry in card["classes"])
        self.size = spec.input_height
        self.crop_mode = card.get("crop_mode", "crop")
        self.max_image_side = (card.get("max_image_side") or {}).get("pixels")
        self.steps = spec.preprocessing
        self.tta = spec.test_time_augmentation
        self.referral = referral_basis(card)
        self.referral_threshold = self.referral["malignant_probability"] if self.referral else None
        self.reliability = reliability
        self.temperature = reliability.temperature if reliability is not None else 1.0
        self.explainer = Explainer(graphs, temperature=self.temperature)

    def prepare(self, image):
        """The image as this classifier looks at it: shrunk to the resolution it was trained at
        (card "max_image_side"), then preprocessed by its steps."""
        return preprocess(at_trained_resolution(image, self.max_image_side), self.steps)

    def input_for(self, preprocessed_image, mask):
        return classifier_input(preprocessed_image, mask, self.crop_mode, self.size)

    def outputs(self, inputs, whole=None):
        """(N, size, size, 3) inputs -> view logits (views, N, classes), pooled features
        averaged over the views (N, features), and the pooled features of `whole` (the
        whole_input of one image, taken in the same pass; None without it)."""
        inputs = np.asarray(inputs, np.float32)
        batch = tta_views(inputs, self.tta)
        if whole is not None:
            batch = np.concatenate([batch, np.asarray(whole, np.float32)[None]])
        outputs = self.graphs.run(batch)
        # Logits and pooled features in one pass: calibration needs the first, the
        # unusual-image score and the dermoscopy gate the second.
        logits, features = outputs[LOGITS_LAYER], outputs[POOLED_LAYER]
        image_features = None
        if whole is not None:  # the last row is the whole image's
            logits, features, image_features = logits[:-1], features[:-1], features[-1:]
        views = len(logits) // len(inputs)
        return (logits.reshape(views, len(inputs), -1),
                features.reshape(views, len(inputs), -1).mean(0), image_features)

    def probabilities(self, inputs):
        """(N, size, size, 3) uint8 inputs -> (N, classes) calibrated probabilities (the
        temperature-scaled softmax averaged over the test-time views)."""
        return calibrated_probabilities(self.outputs(inputs)[0], self.temperature)

    def whole_input(self, preprocessed_image):
        """The whole image at the input size: what the dermoscopy gate reads the features of."""
        return classifier_input(preprocessed_image, None, "full", self.size)

    def explain(self, crop, saliency=True, whole=None):
        """Probabilities (averaged over the test-time views) and explanations of the most
        probable class, in one pass; with `whole` (the whole_input of the image) its pooled
        features come from the same pass ("image_features")."""
        views = tta_views(np.asarray(crop, np.float32)[None], self.tta)
        explained = self.explainer.explain(crop, saliency=saliency, views=views,
                                           others=None if whole is None else whole[None])
        explained["image_features"] = explained.pop("other_features")[:1] if whole is not None else None
        return explained

    def saliency(self, crop, class_index):
        return self.explainer.saliency(crop, class_index)

    def read(self, image, mask, explain=True, gate=None):
        """One reading of `image` (RGB, the analysed size) with its lesion `mask` (None: none
        found): the crop, calibrated probabilities, features and explanations, in one pass
        (and a second for the saliency). `gate`: called with the whole image's pooled
        features, taken in the same pass, before the saliency is paid for; it raises to
        refuse the image and returns what it noted."""
        # The classifier looks at the image at the resolution it was trained at (the U-Net, and
        # the page, at the image's own); the mask is resized to it when the crop is cut.
        prepared = self.prepare(image)
        crop = self.input_for(prepared, mask)
        whole = self.whole_input(prepared) if gate else None
        if explain:  # Grad-CAM of the shown (most probable) class in the same pass
            explained = self.explain(crop, saliency=False, whole=whole)
            probabilities, features = explained["probabilities"], explained["features"]
            image_features = explained["image_features"]
        else:
            explained = {}
            view_logits, features, image_features = self.outputs(crop[None], whole)
            probabilities = calibrated_probabilities(view_logits, self.temperature)[0]
            features = features[0]
        marks = gate(image_features) if gate else []
        if explain:
            explained["saliency"] = self.saliency(crop, explained["class_index"])
        probabilities = probabilities.astype(np.float64) / probabilities.sum()
        return Reading(crop=crop, region_box=None if mask is None or self.crop_mode == "full" else lesion_box(mask),
                       probabilities=probabilities, malignant_probability=self.malignant_probability(probabilities),
                       features=features, gate_marks=marks, gradcam=explained.get("gradcam"),
                       saliency=explained.get("saliency"), gradcam_empty=explained.get("gradcam_empty", False))

    def flags(self, malignant_probability):
        """Whether the referral flag is raised (never without a threshold)."""
        return self.referral_threshold is not None and malignant_probability >= self.referral_threshold

    def malignant_probability(self, probabilities):
        return float(sum(p for code, p in zip(self.classes, probabilities) if code in MALIGNANT))

    def describe(self, probabilities):
        """Probabilities as sorted rows with plain-language names."""
        rows = [{"code": code, "name": DISPLAY_NAMES[code], "probability": float(p),
                 "malignant": code in MALIGNANT} for code, p in zip(self.classes, probabilities)]
        return sorted(rows, key=lambda row: -row["probability"])


def load_classifier(model_path, runtime=None, fitted_parts=True):
    """A Classifier from a model file: checked against its card, run by `runtime` (default
    the serving runtime, LiteRT; "keras" for a model not exported yet), with the reliability
    parts (temperature, feature statistics, gate) its card names, if any (fitted_parts=False:
    without them, as training.fit_reliability fits them)."""
    from .reliability import ReliabilityModel
    from .runtime import SERVING_RUNTIME, load_graphs
    graphs = load_graphs(model_path, runtime or SERVING_RUNTIME)
    settings = graphs.card.get("reliability") or {}
    fitted = fitted_parts and settings.get("file")
    reliability = ReliabilityModel.load(model_path, settings) if fitted else None
    return Classifier(graphs, reliability)


class CalibrationError(ValueError):
    """A site calibration file that cannot be used with this model."""


def read_site_calibration(path):
    """A site calibration file (written by training.calibrate) as a dict, or CalibrationError."""
    import json
    try:
        with open(path) as handle:
            site = json.load(handle)
        site["threshold"] = float(site["threshold"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CalibrationError(f"Site calibration {path} cannot be read ({error}).") from None
    return site


def for_site(site, loaded, path):
    """What `loaded` (by task) holds for the task a site calibration was made for."""
    if site.get("task") not in loaded:
        raise CalibrationError(f"Site calibration {path} is for task {site.get('task')!r}, which "
                               f"is not loaded ({', '.join(loaded)}).")
    return loaded[site["task"]]


def check_site_calibration(site, card, path):
    """Refuse a site calibration made for another model than the one `card` describes
    (needs no TensorFlow: gunicorn's master checks it before forking)."""
    if site.get("model_sha256") != card.get("sha256"):
        raise CalibrationError(
            f"Site calibration {path} was made for another model (sha256 "
            f"{str(site.get('model_sha256'))[:12]}..., this {site.get('task', '?')} model is "
            f"{str(card.get('sha256'))[:12]}...). Recalibrate with: python -m "
            f"training.calibrate DIR --task {site.get('task', 'TASK')} --out {path}")


def apply_site_calibration(classifier, site, path):
    """Use a clinic's own referral threshold for this classifier."""
    check_site_calibration(site, classifier.card, path)
    threshold = site["threshold"]
    classifier.referral_threshold = threshold
    classifier.referral = dict(classifier.referral or {}, malignant_probability=threshold,
                               site={key: site.get(key) for key in (
                                   "images", "images_per_class", "date", "melanoma_sensitivity",
                                   "nevi_flagged_share", "sensitivity_target")})
    return site
