"""A 1-epoch training run on a handful of images yields a loadable model and an honest card."""
import json

import numpy as np
import pytest

from skinlesion.models import load_checked_model


def test_train_segmenter_one_epoch(tiny_ham10000, tmp_path):
    from training import train_segmenter
    out = tmp_path / "unet.h5"
    train_segmenter.main(["--data", str(tiny_ham10000), "--out", str(out), "--run-dir",
                          str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache"),
                          "--input-shape", "64x64", "--epochs", "1", "--batch-size", "4",
                          "--workers", "1"])
    model, card = load_checked_model(out)
    assert model.output_shape == (None, 64, 64, 1)
    assert card["task"] == "segmentation" and card["epochs"]["trained"] == 1
    assert 0.0 <= card["validation_metrics"]["mean_jaccard"] <= 1.0
    assert card["split"]["method"].startswith("by lesion_id")
    # --resume continues from the checkpoint instead of starting over.
    train_segmenter.main(["--data", str(tiny_ham10000), "--out", str(out), "--run-dir",
                          str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache"),
                          "--input-shape", "64x64", "--epochs", "2", "--batch-size", "4",
                          "--workers", "1", "--resume"])
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert [row["epoch"] for row in state["history"]] == [1, 2]


@pytest.mark.parametrize("task, arch", [("7class", "mobilenetv2"), ("3class", "sequential")])
def test_train_classifier_one_epoch(tiny_ham10000, tmp_path, task, arch):
    from training import train_classifier
    out = tmp_path / f"classifier_{task}.h5"
    train_classifier.main(["--data", str(tiny_ham10000), "--task", task, "--arch", arch,
                           "--out", str(out), "--run-dir", str(tmp_path / "run"),
                           "--cache-dir", str(tmp_path / "cache"), "--input-size", "64",
                           "--epochs", "1", "--batch-size", "4", "--workers", "1"])
    model, card = load_checked_model(out)
    classes = [c["code"] for c in card["classes"]]
    assert len(classes) == (7 if task == "7class" else 3)
    assert model.output_shape == (None, len(classes))
    metrics = card["validation_metrics"]["ground_truth_mask_crops"]
    assert set(metrics) >= {"balanced_accuracy", "macro_auc_ovr", "recall", "confusion_matrix"}
    assert card["crop_mode"] and card["preprocessing"] is not None and card["sha256"]
    assert card["training_masks"] == "ground-truth masks" and card["training_masks_unet_sha256"] is None
    x = np.zeros((1, 64, 64, 3), np.float32)
    assert model(x, training=False).numpy().sum() == pytest.approx(1.0, abs=1e-5)


def test_segmenter_init_from_a_keras_file(tiny_models, tiny_ham10000, tmp_path):
    """--init PATH copies MobileNetV2 weights by layer name from another model file."""
    from skinlesion.models import build_unet, initialise_backbone
    unet = build_unet((64, 64, 3))
    copied = initialise_backbone(unet, str(tiny_models / "classifier_7class.h5"), 64)
    assert copied > 50


def test_checkpoints_keep_the_weight_average_as_best_and_raw_weights_as_last(tmp_path):
    """With use_ema, the averaged weights are evaluated and saved as best; last.keras keeps
    the raw weights so that --resume continues training where it stopped."""
    import keras
    from training.common import RunState, epoch_callback
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.1, use_ema=True, ema_momentum=0.9), "mse")
    evaluated, scores = [], iter([1.0, 0.5])  # the second epoch is worse: best stays at 1

    def evaluate(current):
        evaluated.append([w.copy() for w in current.get_weights()])
        return {"score": next(scores)}

    run = RunState(tmp_path / "run")
    x = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    model.fit(x, x.sum(1, keepdims=True), batch_size=8, epochs=2, verbose=0,
              callbacks=[epoch_callback(run, run.load(), "score", "max", evaluate)])
    averaged = model.get_weights()  # fit ends by writing the average into the model
    best = keras.models.load_model(run.best).get_weights()
    last = keras.models.load_model(run.last).get_weights()
    for a, b, first, second in zip(averaged, best, *evaluated):
        np.testing.assert_allclose(second, a, rtol=1e-6)  # evaluated: the average
        np.testing.assert_allclose(b, first, rtol=1e-6)   # best: epoch 1's average
    assert not np.allclose(best[0], averaged[0])
    assert not np.allclose(last[0], averaged[0])  # last: the raw weights
    assert run.load()["best_epoch"] == 1 and run.load()["best"] == 1.0


def test_training_masks_truth_unet_and_mixed(tiny_models, tiny_ham10000, tmp_path, monkeypatch):
    """--train-masks: the true masks, the U-Net's (written once, reused), or half each."""
    from skinlesion.datasets import read_dataset
    from skinlesion.segment import Segmenter, describe_mask
    from training.train_classifier import training_masks

    def central_lesion(self, image):  # the untrained tiny U-Net finds nothing reliably
        mask = np.zeros(image.shape[:2], bool)
        mask[image.shape[0] // 4: -image.shape[0] // 4, image.shape[1] // 4: -image.shape[1] // 4] = True
        return describe_mask(mask)

    monkeypatch.setattr(Segmenter, "__call__", central_lesion)
    samples = read_dataset(tiny_ham10000)
    unet = tiny_models / "unet.h5"
    assert training_masks(samples, "truth", unet, tmp_path, 0) == [s.mask for s in samples]
    predicted = training_masks(samples, "unet", unet, tmp_path, 0)
    assert len(predicted) == len(samples)
    written = [p for p in predicted if p is not None]
    assert written and all(p.parent.name.startswith("unet-masks-") and p.is_file() for p in written)
    assert all(p not in {s.mask for s in samples} for p in written)
    mixed = training_masks(samples, "mixed", unet, tmp_path, 0)
    assert all(m in (p, s.mask) for m, p, s in zip(mixed, predicted, samples))
    assert set(mixed) & set(written) and set(mixed) & {s.mask for s in samples}
    assert mixed == training_masks(samples, "mixed", unet, tmp_path, 0)  # seeded
