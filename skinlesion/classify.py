"""A loaded classifier with its card: classes, crop mode, preprocessing, referral threshold."""
import numpy as np

from .classes import DISPLAY_NAMES, MALIGNANT
from .regions import classifier_input


class Classifier:
    """Wraps a flat functional classifier; compiled forward and explain functions, built once."""

    def __init__(self, model, card):
        import tensorflow as tf
        from heatmap import Explainer
        self.model = model
        self.card = card
        self.classes = tuple(entry["code"] for entry in card["classes"])
        self.size = int(card["input_size"]["height"])
        self.crop_mode = card.get("crop_mode", "crop")
        self.steps = tuple(card.get("preprocessing", ()))
        referral = card.get("referral") or {}
        self.referral_threshold = referral.get("malignant_probability")
        self.explainer = Explainer(model)
        self._forward = tf.function(
            lambda x: model(x, training=False),
            input_signature=[tf.TensorSpec((None, self.size, self.size, 3), tf.float32)])

    def input_for(self, preprocessed_image, mask):
        return classifier_input(preprocessed_image, mask, self.crop_mode, self.size)

    def probabilities(self, inputs):
        """(N, size, size, 3) uint8 inputs -> (N, classes) probabilities."""
        return self._forward(np.asarray(inputs, np.float32)).numpy()

    def malignant_probability(self, probabilities):
        return float(sum(p for code, p in zip(self.classes, probabilities) if code in MALIGNANT))

    def describe(self, probabilities):
        """Probabilities as sorted rows with plain-language names."""
        rows = [{"code": code, "name": DISPLAY_NAMES[code], "probability": float(p),
                 "malignant": code in MALIGNANT} for code, p in zip(self.classes, probabilities)]
        return sorted(rows, key=lambda row: -row["probability"])
