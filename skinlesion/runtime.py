"""The inference runtime: the seam every forward pass and saliency map runs through.

A model's `.h5` is the source of truth; `python -m training.export_litert` writes beside it the
LiteRT files its card names ("litert": the forward graph and, for a classifier, the saliency
graph; skinlesion.graphs builds both). Serving (the web app, gunicorn, predict.py) runs them
with LiteRT and never imports TensorFlow. Training and evaluation can run the same graphs on
Keras (`runtime="keras"`), for a model not exported yet and for the equality tests.

`load_graphs(model_path, runtime)` returns a ModelGraphs: `run(batch)` -> {output name: array}
and, for a classifier, `input_gradient(image, class_index)` -> (1, H, W). `Segmenter`, `Classifier` and
`Explainer` take it and never call a runtime themselves.
"""
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .cards import EXPORT_COMMAND, ModelFileError, check_model_file

SERVING_RUNTIME = "litert"
RUNTIMES = ("litert", "keras")

_threads = 0  # per interpreter; 0: LiteRT's default


def configure_threads(threads):
    """LiteRT threads per model for the interpreters this process loads next (0: LiteRT
    decides). Workers share the cores: gunicorn gives each cores / workers. (Training pins
    TensorFlow's pools itself: training.common.configure_threads.)"""
    global _threads
    _threads = int(threads or 0)


@dataclass(frozen=True)
class ModelSpec:
    """What running a model needs, read from its card."""
    input_height: int
    input_width: int
    preprocessing: tuple
    test_time_augmentation: str

    @classmethod
    def from_card(cls, card):
        size = card["input_size"]
        return cls(int(size["height"]), int(size["width"]), tuple(card.get("preprocessing", ())),
                   card.get("test_time_augmentation", "none"))


class LiteRTGraph:
    """One .tflite graph, run by LiteRT's interpreter (XNNPACK on the CPU). Its outputs come in
    the order the card lists ("outputs"). An interpreter runs one call at a time, so calls from
    a worker's threads take turns; a batch of another size resizes the input first."""

    def __init__(self, path, outputs):
        from ai_edge_litert.interpreter import Interpreter
        self.names = list(outputs)
        self._interpreter = Interpreter(model_path=str(path), num_threads=_threads or None)
        self._inputs = self._interpreter.get_input_details()
        self._outputs = [detail["index"] for detail in self._interpreter.get_output_details()]
        if len(self._outputs) != len(self.names):
            raise ModelFileError(f"{path} has {len(self._outputs)} outputs; its card names {len(self.names)}.")
        self._shapes = None
        self._lock = threading.Lock()

    def __call__(self, *inputs):
        arrays = [np.ascontiguousarray(value, dtype=detail["dtype"]) for value, detail in zip(inputs, self._inputs)]
        shapes = tuple(array.shape for array in arrays)
        with self._lock:
            if shapes != self._shapes:
                for detail, shape in zip(self._inputs, shapes):
                    self._interpreter.resize_tensor_input(detail["index"], shape)
                self._interpreter.allocate_tensors()
                self._shapes = shapes
            for detail, array in zip(self._inputs, arrays):
                self._interpreter.set_tensor(detail["index"], array)
            self._interpreter.invoke()
            return {name: self._interpreter.get_tensor(index).copy()
                    for name, index in zip(self.names, self._outputs)}


class KerasGraph:
    """The same graph as a TensorFlow function (skinlesion.graphs), for training and evaluation."""

    def __init__(self, function):
        self._function = function

    def __call__(self, *inputs):
        import tensorflow as tf
        tensors = [tf.constant(value) for value in inputs]
        return {name: value.numpy() for name, value in self._function(*tensors).items()}


@dataclass
class ModelGraphs:
    """A loaded model: its card, its forward graph and, for a classifier, its saliency graph."""
    card: dict
    forward: object
    saliency: object = None
    runtime: str = SERVING_RUNTIME
    members: int = 1  # classifiers averaged in the graph (its "class_maps_<i>" outputs)

    def run(self, batch):
        return self.forward(np.asarray(batch, np.float32))

    def input_gradient(self, image, class_index):
        """(1, H, W): the largest absolute gradient of a class's logit over the channels."""
        return self.saliency(np.asarray(image, np.float32)[None], np.array(class_index, np.int32))["saliency"]


def keras_graphs(model, card=None):
    """ModelGraphs of a Keras model in memory (training, evaluation, the exporter's checks); a
    card of its input size alone when none is given."""
    from . import graphs
    if card is None:
        card = {"input_size": {"height": int(model.input_shape[1]), "width": int(model.input_shape[2])}}
    classifier = graphs.is_classifier(model)
    return ModelGraphs(card, KerasGraph(graphs.forward_function(model)),
                       KerasGraph(graphs.saliency_function(model)) if classifier else None,
                       "keras", graphs.member_count(model) if classifier else 1)


def load_graphs(model_path, runtime=SERVING_RUNTIME):
    """A model's graphs on `runtime`, after checking every file against the card."""
    if runtime not in RUNTIMES:
        raise ValueError(f"Unknown runtime {runtime!r}; choose from {RUNTIMES}.")
    if runtime == "keras":
        from .models import load_checked_model  # checks the file against its card
        return keras_graphs(*load_checked_model(model_path))
    return litert_graphs(model_path, check_model_file(model_path, served=True))


def litert_graphs(model_path, card):
    """ModelGraphs on LiteRT from the files the card's "litert" section names (beside the model)."""
    section = card["litert"]
    folder = Path(model_path).parent
    try:
        forward = LiteRTGraph(folder / section["forward"]["file"], section["forward"]["outputs"])
        saliency = (LiteRTGraph(folder / section["saliency"]["file"], section["saliency"]["outputs"])
                    if section.get("saliency") else None)
    except ValueError as error:  # LiteRT's word for a file it cannot read
        raise ModelFileError(f"The LiteRT files of {model_path} cannot be loaded ({error}). "
                             f"Export it again: {EXPORT_COMMAND.format(path=model_path)}") from None
    return ModelGraphs(card, forward, saliency, "litert", int(section.get("members", 1)))
