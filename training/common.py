"""What both training scripts share: cached arrays, tf.data pipelines, checkpoints, logs."""
import hashlib
import json
import os
import sys
import time
from functools import partial
from multiprocessing import Pool
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # allow `python training/x.py` as well as `-m training.x`
    sys.path.insert(0, str(ROOT))


def configure_threads(threads):
    """Pin TensorFlow's thread pools before any op runs (two jobs can share 2 cores)."""
    import tensorflow as tf
    if not threads:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, threads)))
    except RuntimeError:  # its pools already started
        pass


def combining_args(argv, description, what):
    """Arguments of a script that makes one classifier from several (a soup, an average):
    the models, --out, --note, --threads; at least two models."""
    import argparse
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", help="classifier .h5 files (each with its card)")
    p.add_argument("--out", required=True, help=f"the {what}'s .h5 (its card is written beside it)")
    p.add_argument("--note", default="", help="free text recorded in the card")
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args(argv)
    if len(args.models) < 2:
        p.error(f"the {what} needs at least two models")
    return args


def refuse_unless_alike(paths, described, action):
    """Exit naming what differs when the models' described cards (dicts of what must agree,
    one per path) are not all alike; `action` says what was refused ("average", "soup")."""
    first = described[0]
    for path, card in zip(paths[1:], described[1:]):
        differing = [key for key, value in card.items() if value != first[key]]
        if differing:
            raise SystemExit(f"Cannot {action} {path} with {paths[0]}: their cards differ in "
                             + "; ".join(f"{key!r} ({first[key]!r} against {card[key]!r})" for key in differing)
                             + ".")


def add_determinism_argument(parser):
    import argparse
    parser.add_argument("--deterministic", action=argparse.BooleanOptionalAction, default=True,
                        help="same seed, same model: deterministic ops and augmentation draws taken in "
                             "order (TensorFlow documents a slower input pipeline); --no-deterministic "
                             "runs them in parallel")


def seed_training(seed, deterministic):
    """Seed Python, NumPy and TensorFlow; if `deterministic`, also make TensorFlow's ops and
    tf.data deterministic (maps with random ops run serially, in order).

    Why: without it a run repeated with the same seed was another model — the augmentation's
    random draws were taken by parallel map calls in whatever order threads finished — and
    differed from its first run by as much as two seeds do (docs/evaluation/other_clinics.md).
    A run resumed from a checkpoint restarts the random streams, so it is not the twin of an
    uninterrupted one; the card says so (`reproducible`)."""
    import keras
    import tensorflow as tf
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def distribution_strategy():
    """All visible GPUs under MirroredStrategy; the default (CPU) strategy otherwise."""
    import tensorflow as tf
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _star(function, args):
    return function(*args)


def cached_arrays(name, function, argument_tuples, cache_dir, workers=2):
    """Run `function(*args)` for every tuple in parallel, caching the stacked results.

    The cache key covers the function's name and every argument, so a change of
    preprocessing steps, crop mode or size never reuses stale arrays.
    """
    key_source = json.dumps([function.__name__, [[str(a) for a in args] for args in argument_tuples]])
    key = hashlib.sha256(key_source.encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"{name}-{key}.npz"
    if path.is_file():
        with np.load(path) as stored:
            return tuple(stored[f"a{i}"] for i in range(len(stored.files)))
    started = time.time()
    with Pool(workers) as pool:
        results = pool.map(partial(_star, function), argument_tuples, chunksize=32)
    if isinstance(results[0], tuple):
        arrays = tuple(np.stack(column) for column in zip(*results))
    else:
        arrays = (np.stack(results),)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{f"a{i}": array for i, array in enumerate(arrays)})
    print(f"prepared {len(argument_tuples)} {name} arrays in {time.time() - started:.0f}s -> {path}",
          flush=True)
    return arrays


def class_weights(labels, num_classes, power=1.0):
    """Inverse-frequency weights (to the given power), scaled to average 1 over samples."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, (counts.sum() / np.maximum(counts, 1)) ** power, 0.0)
    weights /= (weights[labels]).mean()
    return {index: float(weight) for index, weight in enumerate(weights)}


class RunState:
    """A run folder: last checkpoint (every epoch), best model, state JSON, log."""

    def __init__(self, run_dir):
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.last = self.dir / "last.keras"
        self.best = self.dir / "best.keras"
        self.state_file = self.dir / "state.json"

    def load(self):
        if self.state_file.is_file():
            return json.loads(self.state_file.read_text())
        return {"epoch": 0, "best": None, "best_epoch": None, "history": []}

    def save(self, state):
        temporary = self.state_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(state, indent=1))
        os.replace(temporary, self.state_file)


def epoch_callback(run, state, monitor, mode, evaluate=None):
    """Keras callback: per-epoch log line, last/best checkpoints, resumable state.

    With an optimizer that keeps an exponential moving average of the weights
    (use_ema=True), the averaged weights are the ones evaluated and kept as best, while
    last.keras keeps the raw weights (and the average in its optimizer state) so that
    --resume continues exactly where training stopped.
    """
    import keras

    class Checkpointer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.time()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs if logs is not None else {}
            self.model.save(run.last)
            averaged = getattr(self.model.optimizer, "use_ema", False)
            if averaged:  # the public swap of keras' own callback: average in, then back
                swap = keras.callbacks.SwapEMAWeights()
                swap.set_model(self.model)
                swap.on_test_begin()
            if evaluate is not None:  # in place: EarlyStopping reads the same logs dict next
                logs.update(evaluate(self.model))
            value = logs[monitor]
            better = state["best"] is None or (value > state["best"] if mode == "max"
                                               else value < state["best"])
            if better:
                self.model.save(run.best)
                state["best"], state["best_epoch"] = float(value), epoch + 1
            if averaged:
                swap.on_test_end()
            state["epoch"] = epoch + 1
            record = {k: round(float(v), 5) for k, v in logs.items() if np.ndim(v) == 0}
            record.update(epoch=epoch + 1, seconds=round(time.time() - self.started, 1))
            state["history"].append(record)
            run.save(state)
            shown = " ".join(f"{k}={v:.4f}" for k, v in record.items()
                             if k not in ("epoch", "seconds"))
            print(f"epoch {epoch + 1} ({record['seconds']:.0f}s) {shown}"
                  f"{'  *best*' if better else ''}", flush=True)

    return Checkpointer()


def cosine_schedule(base_lr, total_epochs, warmup=1, floor=0.02):
    """Learning rate by epoch: linear warm-up then cosine decay (a pure function: resumable)."""
    def rate(epoch, _current=None):
        if epoch < warmup:
            return base_lr * (epoch + 1) / (warmup + 1)
        progress = (epoch - warmup) / max(1, total_epochs - warmup)
        return base_lr * (floor + (1 - floor) * 0.5 * (1 + np.cos(np.pi * progress)))
    return rate


def label_set_crossentropy():
    """A Keras loss: cross-entropy over the classes a sample's source can have, optionally
    blended with a teacher's probabilities (knowledge distillation).

    y_true holds [one-hot | allowed-classes mask] or [one-hot | allowed | teacher's
    probabilities]. A data set that has only some classes (ISIC 2017: mel, nv, bkl) then
    teaches which of those its image is, never that an image that looks like it cannot be a
    basal cell carcinoma: the softmax is renormalised over the allowed classes before the
    log. With every class allowed it is the usual loss. With `distillation` d > 0 the loss is
    (1 - d) times that plus d times the cross-entropy against the teacher's probabilities
    over every class (a teacher knows all of them, also for an ISIC 2017 image).
    """
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable("skinlesion")
    class LabelSetCrossentropy(keras.losses.Loss):
        def __init__(self, label_smoothing=0.0, distillation=0.0, name="label_set_crossentropy", **kwargs):
            super().__init__(name=name, **kwargs)
            self.label_smoothing = float(label_smoothing)
            self.distillation = float(distillation)

        def call(self, y_true, y_pred):
            classes = y_pred.shape[-1]
            target, allowed = y_true[:, :classes], y_true[:, classes:2 * classes]
            kept = y_pred * allowed
            kept = kept / ops.maximum(ops.sum(kept, axis=-1, keepdims=True), 1e-7)
            spread = allowed / ops.sum(allowed, axis=-1, keepdims=True)
            target = target * (1.0 - self.label_smoothing) + self.label_smoothing * spread
            labels = -ops.sum(target * ops.log(ops.clip(kept, 1e-7, 1.0)), axis=-1)
            if not self.distillation or y_true.shape[-1] == 2 * y_pred.shape[-1]:
                return labels  # (validation batches carry no teacher's part)
            teacher = y_true[:, 2 * classes:]
            taught = -ops.sum(teacher * ops.log(ops.clip(y_pred, 1e-7, 1.0)), axis=-1)
            return (1.0 - self.distillation) * labels + self.distillation * taught

        def get_config(self):
            return {**super().get_config(), "label_smoothing": self.label_smoothing,
                    "distillation": self.distillation}

    return LabelSetCrossentropy


BATCHNORM_MOMENTUM = 0.9  # see training.builders.set_batchnorm_momentum


def fit_best(build, train_data, val_data, monitor, evaluate, *, run_dir, resume, epochs, lr, patience,
             callbacks=(), custom_objects=None):
    """What every trainer does between its data and its card: build the model (or load the
    last checkpoint of `run_dir` when resuming), fit it for at most `epochs` with a checkpoint
    every epoch, warm-up + cosine learning rate from `lr` and early stopping after `patience`
    epochs without a better `monitor` (higher is better, computed by `evaluate(model)`), then
    load the best epoch's model without its optimizer.

    Returns (best model, the run's state, minutes this run trained)."""
    import keras
    from training.builders import set_batchnorm_momentum
    run = RunState(run_dir)
    state = run.load() if resume else {"epoch": 0, "best": None, "best_epoch": None, "history": []}
    with distribution_strategy().scope():
        if resume and run.last.is_file():
            model = keras.models.load_model(run.last, custom_objects=custom_objects)
            if state["epoch"] < epochs:
                state.setdefault("resumed_after_epochs", []).append(state["epoch"])
            print(f"resumed from {run.last} after epoch {state['epoch']}", flush=True)
        else:
            model = build()
    set_batchnorm_momentum(model, BATCHNORM_MOMENTUM)  # also on --resume: not saved reliably
    callbacks = [*callbacks,
                 keras.callbacks.LearningRateScheduler(cosine_schedule(lr, epochs)),
                 epoch_callback(run, state, monitor, "max", evaluate),
                 keras.callbacks.EarlyStopping(monitor, mode="max", patience=patience)]
    started = time.time()
    if state["epoch"] < epochs:
        model.fit(train_data, validation_data=val_data, epochs=epochs, initial_epoch=state["epoch"],
                  callbacks=callbacks, verbose=2)
    minutes = (time.time() - started) / 60
    return keras.models.load_model(run.best, compile=False), run.load(), minutes


def ship(model, path):
    """Write the model file a card will describe."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    model.save(path)


def training_record(state, minutes, *, init, note, max_epochs, deterministic):
    """The card's account of a run: init, note, epochs, minutes and per-epoch history."""
    return {"init": init, "note": note or None,
            "epochs": {"trained": state["epoch"], "best": state["best_epoch"], "max": max_epochs},
            "deterministic": deterministic,
            # a resume restarts the random streams: such a run cannot be repeated bit for bit
            "reproducible": deterministic and not state.get("resumed_after_epochs"),
            "resumed_after_epochs": state.get("resumed_after_epochs", []),
            "training_minutes_this_run": round(minutes, 1),
            "training_minutes_all_epochs": round(sum(h["seconds"] for h in state["history"]) / 60, 1),
            "history": state["history"]}
