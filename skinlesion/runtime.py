"""The inference runtime: TensorFlow's thread settings, and the seam models run through.

`Segmenter` and `Classifier` never call Keras for a forward pass themselves: they ask a
runner for the outputs they need (`runner_for(model, spec, outputs)`), and the model spec
read from the card says which runtime runs it. Keras (TensorFlow) is the one runtime today;
a lighter one (LiteRT for the forward passes, say) is one more entry in RUNNERS, with no
caller changed. Explanations need gradients and stay on TensorFlow (`skinlesion.explain`).
"""
from dataclasses import dataclass


def configure_threads(threads, inter_op=1):
    """Pin TensorFlow's thread pools before any op runs (workers and training jobs share
    the cores); 0 lets TensorFlow decide. A process whose runtime already started keeps
    its pools (tests build many apps in one process)."""
    import tensorflow as tf
    if not threads:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    except RuntimeError:
        pass


@dataclass(frozen=True)
class ModelSpec:
    """What running a model needs, read from its card."""
    input_height: int
    input_width: int
    preprocessing: tuple
    test_time_augmentation: str
    runtime: str

    @classmethod
    def from_card(cls, card):
        size = card["input_size"]
        return cls(int(size["height"]), int(size["width"]), tuple(card.get("preprocessing", ())),
                   card.get("test_time_augmentation", "none"), card.get("runtime", "keras"))


class KerasRunner:
    """Forward passes of a Keras model through one compiled function, built once: a batch
    of (N, height, width, 3) float32 in, the named layers' outputs (or the model's own
    output) out, as NumPy arrays."""

    def __init__(self, model, spec, outputs=()):
        import keras
        import tensorflow as tf
        graph = keras.Model(model.inputs, [model.get_layer(name).output for name in outputs]) \
            if outputs else model
        self._forward = tf.function(
            lambda x: graph(x, training=False),
            input_signature=[tf.TensorSpec((None, spec.input_height, spec.input_width, 3), tf.float32)],
            reduce_retracing=True)

    def __call__(self, batch):
        results = self._forward(batch)
        results = results if isinstance(results, (list, tuple)) else [results]
        return [result.numpy() for result in results]


RUNNERS = {"keras": KerasRunner}


def runner_for(model, spec, outputs=()):
    if spec.runtime not in RUNNERS:
        raise ValueError(f"Unknown runtime {spec.runtime!r} in the model card; known: {sorted(RUNNERS)}.")
    return RUNNERS[spec.runtime](model, spec, outputs)
