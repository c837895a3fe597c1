"""Trained Keras models as files: checked loading, and what loading an average needs.

Every classifier is one flat functional graph (no nested sub-model), so Grad-CAM can
reach the last convolutional layer, and it ends in a layer named "logits" followed by a
softmax: explanations are taken from the logits. An average of classifiers is one such
graph too (training/builders.py, `build_average`): each member's layers, renamed, side by
side, their mean probability taken by `MeanProbabilityLogits`. Building and training
models is training's job (training/builders.py); serving runs LiteRT (skinlesion/runtime.py).
"""
import keras
from keras import layers

from .cards import ModelFileError, check_model_file
from .layer_names import LAST_CONV_LAYERS, MEMBER_PREFIX


def load_checked_model(model_path):
    """Load a model after checking its sha256 against its card. Returns (model, card)."""
    card = check_model_file(model_path)
    try:
        model = keras.models.load_model(model_path, compile=False)
    except Exception as error:
        raise ModelFileError(f"Model file {model_path} cannot be loaded ({error}).") from None
    return model, card


@keras.saving.register_keras_serializable("skinlesion")
class MeanProbabilityLogits(layers.Layer):
    """The logits of an average of classifiers: (N, members x classes) member logits ->
    (N, classes) log of the mean of the members' softmax probabilities. A softmax of these
    is exactly that mean (the average as it was measured), and Grad-CAM and saliency are
    taken from them as from one model's logits."""

    def __init__(self, members, **kwargs):
        super().__init__(**kwargs)
        self.members = int(members)

    def call(self, member_logits):
        from keras import ops
        per_member = ops.reshape(member_logits, (-1, self.members, member_logits.shape[-1] // self.members))
        return ops.logsumexp(ops.log_softmax(per_member, axis=-1), axis=1) - ops.log(float(self.members))

    def get_config(self):
        return {**super().get_config(), "members": self.members}


def member_last_conv_names(model):
    """The last convolutional layer of each member of an average, in member order (none for
    a single model)."""
    import itertools
    names = {layer.name for layer in model.layers}
    found = []
    for index in itertools.count():
        member = [MEMBER_PREFIX.format(index) + name for name in LAST_CONV_LAYERS
                  if MEMBER_PREFIX.format(index) + name in names]
        if not member:
            return found
        found.append(member[0])
