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
    x = np.zeros((1, 64, 64, 3), np.float32)
    assert model(x, training=False).numpy().sum() == pytest.approx(1.0, abs=1e-5)


def test_segmenter_init_from_a_keras_file(tiny_models, tiny_ham10000, tmp_path):
    """--init PATH copies MobileNetV2 weights by layer name from another model file."""
    from skinlesion.models import build_unet, initialise_backbone
    unet = build_unet((64, 64, 3))
    copied = initialise_backbone(unet, str(tiny_models / "classifier_7class.h5"), 64)
    assert copied > 50
