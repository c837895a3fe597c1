"""A 1-epoch training run on a handful of images yields a loadable model and an honest card."""
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from skinlesion.models import load_checked_model


def test_train_segmenter_one_epoch(tiny_ham10000, tmp_path):
    from training import train_segmenter
    out = tmp_path / "unet.h5"
    train_segmenter.main(["--data", str(tiny_ham10000), "--out", str(out), "--run-dir",
                          str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache"),
                          "--input-shape", "64x64", "--epochs", "1", "--batch-size", "4",
                          "--workers", "1", "--no-deterministic"])
    model, card = load_checked_model(out)
    assert model.output_shape == (None, 64, 64, 1)
    assert card["task"] == "segmentation" and card["epochs"]["trained"] == 1
    assert 0.0 <= card["validation_metrics"]["mean_jaccard"] <= 1.0
    assert card["split"]["method"].startswith("by lesion_id")
    # --resume continues from the checkpoint instead of starting over.
    train_segmenter.main(["--data", str(tiny_ham10000), "--out", str(out), "--run-dir",
                          str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache"),
                          "--input-shape", "64x64", "--epochs", "2", "--batch-size", "4",
                          "--workers", "1", "--no-deterministic", "--resume"])
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert [row["epoch"] for row in state["history"]] == [1, 2]


# In-process runs above and below take --no-deterministic: op determinism is process-wide, and
# would otherwise hold for every later test. The default is tested in processes of its own here.
ROOT = Path(__file__).resolve().parents[1]

AUGMENTED_BATCHES = """
import hashlib, numpy as np
from training.common import seed_training
from training.train_classifier import make_pipeline
seed_training(3, deterministic=True)
rng = np.random.default_rng(0)
images, labels = rng.integers(0, 255, (512, 64, 64, 3), dtype=np.uint8), rng.integers(0, 3, 512)
digest = hashlib.sha256()
for batch, _, _ in make_pipeline(images, labels, 3, 32, True, 3, np.ones(512), "basic", "masked"):
    digest.update(batch.numpy().tobytes())
print(digest.hexdigest())
"""


def test_the_augmented_batches_are_drawn_alike_in_every_process_with_the_same_seed():
    """The cause of runs that differed: the basic recipe augments batches in parallel map calls,
    each drawing from one random stream in whatever order the threads reach it. Without
    determinism, three processes gave three different digests here."""
    import subprocess
    import sys
    digests = {subprocess.run([sys.executable, "-c", AUGMENTED_BATCHES], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout.strip() for _ in range(2)}
    assert len(digests) == 1 and len(digests.pop()) == 64


def test_a_run_repeated_with_its_seed_is_the_same_model_and_another_seed_is_not(tiny_ham10000, tmp_path):
    """Same seed, same weights: initialisation, order, augmentation and card alike."""
    import subprocess
    import sys

    def train(name, seed):
        out = tmp_path / name / "classifier_3class.h5"
        subprocess.run([sys.executable, "-m", "training.train_classifier", "--data", str(tiny_ham10000),
                        "--task", "3class", "--arch", "sequential", "--out", str(out),
                        "--run-dir", str(tmp_path / name / "run"), "--cache-dir", str(tmp_path / "cache"),
                        "--input-size", "48", "--epochs", "2", "--batch-size", "4", "--workers", "1",
                        "--threads", "2", "--train-seed", str(seed)],
                       cwd=ROOT, check=True, capture_output=True)
        return load_checked_model(out)

    (first, card), (again, _), (other, _) = train("first", 3), train("again", 3), train("other", 4)
    assert card["deterministic"] and card["reproducible"] and card["resumed_after_epochs"] == []
    assert all(np.array_equal(a, b) for a, b in zip(first.get_weights(), again.get_weights()))
    assert not all(np.array_equal(a, b) for a, b in zip(first.get_weights(), other.get_weights()))


@pytest.mark.parametrize("task, arch, extra", [("7class", "mobilenetv2", []),
                                               ("3class", "sequential", ["--mixup", "0.4"])])
def test_train_classifier_one_epoch(tiny_models, tiny_ham10000, tmp_path, task, arch, extra):
    from training import train_classifier
    out = tmp_path / f"classifier_{task}.h5"
    if arch == "mobilenetv2":  # starts from a backbone: its early layers frozen, said in the card
        extra = ["--init", str(tiny_models / "classifier_7class.h5"), "--freeze-through", "block_2_add"]
    train_classifier.main(["--data", str(tiny_ham10000), "--task", task, "--arch", arch,
                           "--out", str(out), "--run-dir", str(tmp_path / "run"),
                           "--cache-dir", str(tmp_path / "cache"), "--input-size", "64",
                           "--epochs", "1", "--batch-size", "4", "--workers", "1", "--no-deterministic", *extra])
    model, card = load_checked_model(out)
    assert card["training"]["mixup_alpha"] == (0.4 if arch == "sequential" else None)
    assert card["training"]["frozen_through"] == ("block_2_add" if arch == "mobilenetv2" else None)
    assert card["max_image_side"]["pixels"] == 200  # the synthetic images are 200x150
    classes = [c["code"] for c in card["classes"]]
    assert len(classes) == (7 if task == "7class" else 3)
    assert model.output_shape == (None, len(classes))
    metrics = card["validation_metrics"]["ground_truth_mask_crops"]
    assert set(metrics) >= {"balanced_accuracy", "macro_auc_ovr", "recall", "confusion_matrix"}
    assert card["crop_mode"] and card["preprocessing"] is not None and card["sha256"]
    assert card["training_masks"] == "ground-truth masks" and card["training_masks_unet_sha256"] is None
    x = np.zeros((1, 64, 64, 3), np.float32)
    assert model(x, training=False).numpy().sum() == pytest.approx(1.0, abs=1e-5)


def test_image_side_writes_the_training_images_median_side_into_the_card(tiny_models, tiny_ham10000, tmp_path):
    import shutil
    from skinlesion.cards import read_card, write_card
    from skinlesion.classify import Classifier
    from skinlesion.runtime import keras_graphs
    from training.datasets import read_dataset
    from training import image_side
    for suffix in (".h5", ".json"):
        shutil.copy(tiny_models / f"classifier_7class{suffix}", tmp_path / f"classifier_7class{suffix}")
    model_path = tmp_path / "classifier_7class.h5"
    card = read_card(model_path)
    card["split"] = {"val_fraction": 0.15, "seed": 42}
    write_card(model_path, card)
    image_side.main(["--model", str(model_path), "--data", str(tiny_ham10000), "--write"])
    model, card = load_checked_model(model_path)
    assert card["max_image_side"]["pixels"] == 200  # the synthetic images are 200x150
    assert Classifier(keras_graphs(model, card)).max_image_side == 200
    # A squashed source counts at the size training restores it to.
    samples = read_dataset(tiny_ham10000)[:3]
    restored = [replace(s, resize_to=(192, 256)) for s in samples]
    assert image_side.image_sides(samples + restored).tolist() == [200] * 3 + [256] * 3


def test_mixup_blends_images_targets_and_weights_by_one_share():
    """Each image's one-hot target and loss weight move by the share its pixels moved; the
    classes a blend may belong to are both images' allowed classes."""
    import tensorflow as tf
    from training.augment import mixup
    classes = 3
    images = tf.constant(np.arange(4, dtype=np.float32)[:, None, None, None] * np.ones((4, 2, 2, 3), np.float32))
    labels = np.array([0, 1, 2, 0])
    allowed = np.array([[1, 1, 0], [1, 1, 1], [1, 1, 1], [1, 1, 0]], np.float32)
    targets = tf.constant(np.concatenate([np.eye(classes, dtype=np.float32)[labels], allowed], 1))
    weights = tf.constant([1.0, 2.0, 3.0, 4.0])
    mixed, mixed_targets, mixed_weights = (t.numpy() for t in mixup(images, targets, weights, classes, 0.4))
    partner = [3, 2, 1, 0]
    share = (mixed[:, 0, 0, 0] - np.array(partner)) / (np.arange(4) - np.array(partner))
    assert ((share >= 0) & (share <= 1)).all()
    expected = share[:, None] * np.eye(classes)[labels] + (1 - share[:, None]) * np.eye(classes)[labels[partner]]
    assert mixed_targets[:, :classes] == pytest.approx(expected, abs=1e-5)
    assert (mixed_targets[:, classes:] == np.maximum(allowed, allowed[partner])).all()
    assert mixed_weights == pytest.approx(share * weights.numpy() + (1 - share) * weights.numpy()[partner], abs=1e-5)


def test_every_augmentation_recipe_gives_crops_of_the_input_shape_in_range():
    """Each recipe --augment offers builds a training pipeline whose batches keep the crops'
    shape and the 0-255 range, and change the images."""
    from training.augment import RECIPE_DESCRIPTIONS
    from training.train_classifier import make_pipeline
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, 32, 32, 3)).astype(np.uint8)
    labels = np.arange(8) % 3
    for recipe in RECIPE_DESCRIPTIONS:
        batch = next(iter(make_pipeline(images, labels, 3, 4, True, 0, weights=np.ones(8), recipe=recipe)))
        crops = batch[0].numpy()
        assert crops.shape == (4, 32, 32, 3), recipe
        assert np.isfinite(crops).all() and crops.min() >= 0 and crops.max() <= 255, recipe
        assert not any(np.array_equal(crop, image) for crop in crops for image in images), recipe


def test_nearest_filling_keeps_the_lesion_out_of_a_masked_crops_corners():
    """--fill-mode nearest: rotating and zooming a masked crop (a dark lesion on flat skin
    colour) never mirrors the lesion into the corners, as serving crops never show it."""
    from training.train_classifier import make_pipeline
    rows, cols = np.mgrid[:32, :32]
    lesion = (rows - 15.5) ** 2 + (cols - 15.5) ** 2 < 14.5 ** 2  # nearly touching the sides
    crop = np.repeat(np.where(lesion, 0, 128)[..., None], 3, axis=2).astype(np.uint8)
    crops = np.repeat(crop[None], 16, axis=0)

    def darkest_corner(fill_mode):
        batches = make_pipeline(crops, np.zeros(16, int), 3, 8, True, 0, weights=np.ones(16),
                                recipe="basic", fill_mode=fill_mode).take(2)
        return min(batch[0].numpy()[:, [0, 0, -1, -1], [0, -1, 0, -1]].min() for batch in batches)

    assert darkest_corner("nearest") > 60  # skin after the colour jitter; the lesion stays near 0
    assert darkest_corner("reflect") < 60  # what the basic recipe has trained on so far


def test_dermatoscope_frame_darkens_the_corners_and_keeps_the_centre():
    """The circle is off-centre by up to 6% of the side, so one corner at least is dark."""
    from training.augment import dermatoscope_frame
    for _ in range(5):
        framed = dermatoscope_frame(np.full((64, 64, 3), 0.8, np.float32)).numpy()
        corners = [framed[0, 0], framed[0, -1], framed[-1, 0], framed[-1, -1]]
        assert min(corner.max() for corner in corners) <= 0.1 + 1e-6
        assert framed[24:40, 24:40] == pytest.approx(0.8)
        assert framed.max() <= 0.8 + 1e-6


def test_segmenter_init_from_a_keras_file(tiny_models, tiny_ham10000, tmp_path):
    """--init PATH copies MobileNetV2 weights by layer name from another model file."""
    from training.builders import build_unet, initialise_backbone
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
    from training.datasets import read_dataset
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
    # Cached by the U-Net's sha256, then by source (two data sets may share file names).
    assert written and all(p.parent.parent.name.startswith("unet-masks-") and p.is_file()
                           for p in written)
    assert all(p not in {s.mask for s in samples} for p in written)
    mixed = training_masks(samples, "mixed", unet, tmp_path, 0)
    assert all(m in (p, s.mask) for m, p, s in zip(mixed, predicted, samples))
    assert set(mixed) & set(written) and set(mixed) & {s.mask for s in samples}
    assert mixed == training_masks(samples, "mixed", unet, tmp_path, 0)  # seeded
    # A source without true masks (ISIC 2017) gets the U-Net's, whatever --train-masks says.
    unmasked = [replace(s, mask=None) for s in samples]
    assert training_masks(unmasked, "truth", unet, tmp_path, 0) == predicted


def test_sample_weights_even_out_sources_within_a_class():
    """Within a class each source's share is evened out; each class keeps its total weight."""
    from types import SimpleNamespace
    from training.common import class_weights
    from training.train_classifier import sample_weights
    sources = ["big"] * 80 + ["small"] * 20 + ["big"] * 30
    labels = np.array([0] * 100 + [1] * 30)
    samples = [SimpleNamespace(source=s) for s in sources]
    weights, per_class = sample_weights(samples, labels, 2, 1.0, source_power=1.0)
    assert per_class == class_weights(labels, 2, 1.0)
    for label in (0, 1):
        assert weights[labels == label].sum() == pytest.approx(per_class[label] * (labels == label).sum())
    big, small = weights[:80].sum(), weights[80:100].sum()
    assert big == pytest.approx(small)  # power 1: equal totals per source
    unbalanced, _ = sample_weights(samples, labels, 2, 1.0, source_power=0.0)
    assert np.allclose(unbalanced, [per_class[int(label)] for label in labels])


def test_evaluate_scores_external_folders_at_the_referral_threshold(tiny_models, tiny_ham10000,
                                                                      tiny_labels_csv, tmp_path):
    """--external: another clinic's folder through the serving pipeline, its figures in the card."""
    import shutil
    from skinlesion.cards import card_path, read_card
    from training import evaluate
    models = tmp_path / "models"
    shutil.copytree(tiny_models, models)
    path = models / "classifier_7class.h5"
    card = read_card(path)
    card["split"] = {"val_fraction": 0.3, "seed": 1}
    card_path(path).write_text(json.dumps(card))
    metrics = evaluate.main(["--model", str(path), "--data", str(tiny_ham10000), "--split", "val",
                             "--external", str(tiny_labels_csv), "--models", str(models),
                             "--out", str(tmp_path / "report"), "--update-card"])
    name = tiny_labels_csv.name
    external = metrics["external_validation"][name]
    assert external["images"] == 12 and set(external["class_counts"]) >= {"mel", "nv", "bkl"}
    assert 0.0 <= external["melanoma_vs_nevus_auc"] <= 1.0
    referral = external["referral"]
    assert referral["malignant_probability"] == card["referral"]["malignant_probability"]
    assert {"melanoma_sensitivity", "nevi_flagged_share"} <= set(referral)
    for plot in ("roc.png", "confusion.png", "reliability.png", "probabilities.csv"):
        assert (tmp_path / "report" / "external" / name / plot).is_file()
    recorded = read_card(path)
    assert recorded["referral"] == card["referral"]  # evaluating never moves the threshold
    assert recorded["external_validation"][name]["expected_calibration_error"] is not None
    assert "reliability" not in recorded["external_validation"][name]
    assert recorded["sha256"] == card["sha256"]  # the model file is untouched


def test_referral_figures_count_flagged_melanomas_and_nevi():
    from training.metrics import melanoma_vs_nevus_auc, referral_figures, referral_threshold
    classes = ("bcc", "mel", "nv")
    labels = np.array([1, 1, 1, 1, 2, 2, 2, 2])
    malignant = np.array([0.9, 0.8, 0.6, 0.2, 0.7, 0.3, 0.1, 0.05])
    probabilities = np.stack([np.zeros(8), malignant, 1 - malignant], 1)
    figures = referral_figures(labels, probabilities, classes, 0.5)
    assert figures["melanoma_sensitivity"] == 0.75 and figures["nevi_flagged_share"] == 0.25
    assert melanoma_vs_nevus_auc(labels, probabilities, classes) == pytest.approx(13 / 16)  # 13 of 16 pairs ranked right
    chosen = referral_threshold(labels, probabilities, classes, 0.75)
    assert chosen["malignant_probability"] == 0.6 and chosen["melanoma_sensitivity"] == 0.75


def test_a_rounded_referral_threshold_still_flags_the_melanoma_that_set_it():
    """The card keeps four decimals; rounding 0.15806 to nearest (0.1581) would unflag it."""
    from training.metrics import referral_by_rule, referral_threshold
    classes = ("bcc", "mel", "nv")
    malignant = np.array([0.9, 0.8, 0.15806, 0.1, 0.05])
    labels = np.array([1, 1, 1, 1, 2])
    probabilities = np.stack([np.zeros(5), malignant, 1 - malignant], 1)
    chosen = referral_threshold(labels, probabilities, classes, 0.75)
    assert chosen["malignant_probability"] == 0.158 and chosen["melanoma_sensitivity"] == 0.75
    sources = np.array(["a", "a", "a", "a", "a"])
    assert referral_by_rule(labels, probabilities, sources, classes, 0.75, "every_source")[
        "melanoma_sensitivity"] == 0.75


def test_label_set_loss_ignores_classes_a_source_does_not_have():
    import keras
    from training.common import label_set_crossentropy
    loss = label_set_crossentropy()(label_smoothing=0.0)
    probabilities = np.array([[0.5, 0.3, 0.2]], np.float32)
    one_hot = np.array([[0.0, 1.0, 0.0]], np.float32)
    every = np.concatenate([one_hot, np.ones((1, 3), np.float32)], 1)
    plain = keras.losses.CategoricalCrossentropy()(one_hot, probabilities)
    assert float(loss(every, probabilities)) == pytest.approx(float(plain), rel=1e-5)
    # Class 0 is absent from this source: its probability neither helps nor hurts.
    only_two = np.concatenate([one_hot, np.array([[0.0, 1.0, 1.0]], np.float32)], 1)
    assert float(loss(only_two, probabilities)) == pytest.approx(-np.log(0.3 / 0.5), rel=1e-5)


def test_distillation_blends_the_labels_loss_with_the_teachers():
    """With a teacher's part the loss is (1 - d) x the labels' loss + d x the cross-entropy
    against the teacher's probabilities over every class, also the classes the image's
    source does not have; a batch without that part (validation) gets the labels' loss."""
    from training.common import label_set_crossentropy
    probabilities = np.array([[0.5, 0.3, 0.2]], np.float32)
    one_hot = np.array([[0.0, 1.0, 0.0]], np.float32)
    only_two = np.array([[0.0, 1.0, 1.0]], np.float32)
    teacher = np.array([[0.6, 0.1, 0.3]], np.float32)
    labels_loss = -np.log(0.3 / 0.5)
    teachers_loss = -(teacher * np.log(probabilities)).sum()
    taught = np.concatenate([one_hot, only_two, teacher], 1)
    for share in (0.0, 0.3, 1.0):
        loss = label_set_crossentropy()(label_smoothing=0.0, distillation=share)
        assert float(loss(taught, probabilities)) == pytest.approx(
            (1 - share) * labels_loss + share * teachers_loss, rel=1e-5)
        assert float(loss(taught[:, :6], probabilities)) == pytest.approx(labels_loss, rel=1e-5)


def test_mixup_blends_the_teachers_probabilities_by_the_images_share():
    import tensorflow as tf
    from training.augment import mixup
    classes = 3
    images = tf.constant(np.arange(4, dtype=np.float32)[:, None, None, None] * np.ones((4, 2, 2, 3), np.float32))
    teacher = np.random.default_rng(0).dirichlet(np.ones(classes), 4).astype(np.float32)
    targets = tf.constant(np.concatenate([np.eye(classes, dtype=np.float32)[[0, 1, 2, 0]],
                                          np.ones((4, classes), np.float32), teacher], 1))
    mixed, mixed_targets, _ = (t.numpy() for t in mixup(images, targets, tf.ones(4), classes, 0.4))
    partner = [3, 2, 1, 0]
    share = (mixed[:, 0, 0, 0] - np.array(partner)) / (np.arange(4) - np.array(partner))
    assert mixed_targets.shape == (4, 3 * classes)
    assert mixed_targets[:, 2 * classes:] == pytest.approx(
        share[:, None] * teacher + (1 - share[:, None]) * teacher[partner], abs=1e-5)


def test_a_distilled_classifier_records_its_teachers_and_refuses_one_that_looks_otherwise(
        tiny_ham10000, tmp_path, monkeypatch):
    """A teacher trained as the student is taught from (its sha256 and share in the card); a
    teacher with another crop mode would teach from crops it never saw, and is refused."""
    from skinlesion.cards import sha256_of
    from training import train_classifier

    def train(name, *extra):
        out = tmp_path / name / "classifier_3class.h5"
        train_classifier.main(["--data", str(tiny_ham10000), "--task", "3class", "--arch", "sequential",
                               "--out", str(out), "--run-dir", str(tmp_path / name / "run"),
                               "--cache-dir", str(tmp_path / "cache"), "--input-size", "48",
                               "--epochs", "1", "--batch-size", "4", "--workers", "1", "--no-deterministic", *extra])
        return out

    teacher = train("teacher", "--crop-mode", "masked")
    student = train("student", "--crop-mode", "masked", "--teacher", str(teacher), "--distill", "0.5")
    distillation = load_checked_model(student)[1]["training"]["distillation"]
    assert distillation["share_of_loss"] == 0.5
    assert distillation["teachers"] == [{"file": str(teacher), "sha256": sha256_of(teacher)}]
    # The teachers' probabilities are kept: another run on the same crops reads them back.
    kept = list((tmp_path / "cache").glob("teachers-*.npy"))
    assert len(kept) == 1 and np.load(kept[0]).sum(1) == pytest.approx(1.0, abs=1e-5)
    monkeypatch.setattr(train_classifier, "teacher_probabilities", None)  # would fail if called
    train("again", "--crop-mode", "masked", "--teacher", str(teacher), "--distill", "0.5")
    monkeypatch.undo()
    with pytest.raises(SystemExit, match="looks at lesions otherwise"):
        train("refused", "--crop-mode", "crop", "--teacher", str(teacher))


def write_melanoma_scores(path, rows):
    """An evaluate probabilities.csv of 7 classes where P(mel) + P(nv) = 1: rows (source, label, p_mel)."""
    import csv
    classes = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "source", "label"] + [f"p_{c}" for c in classes])
        for i, (source, label, p_mel) in enumerate(rows):
            writer.writerow([f"x{i}", source, label] + [0.0, 0.0, 0.0, 0.0, p_mel, 1 - p_mel, 0.0])


def test_every_source_rule_takes_the_most_sensitive_sources_threshold(tmp_path):
    """compare_runs' second rule: the lowest of the sources' own 90% thresholds, so the source
    whose melanomas score lowest still has 90% of them flagged."""
    from training.compare_runs import referral_on_external
    write = write_melanoma_scores

    # Source "a": melanomas at 0.6-0.9; source "b": melanomas at 0.2-0.3 (a camera the model knows less).
    val = ([("a", "mel", v) for v in np.linspace(0.6, 0.9, 20)] + [("a", "nv", 0.05)] * 40
           + [("b", "mel", v) for v in np.linspace(0.2, 0.3, 10)] + [("b", "nv", 0.05)] * 20)
    write(tmp_path / "probabilities.csv", val)
    external = [("c", "mel", v) for v in np.linspace(0.2, 0.9, 20)] + [("c", "nv", 0.1)] * 20
    write(tmp_path / "external" / "c" / "probabilities.csv", external)
    pooled = referral_on_external(tmp_path, "c", "pooled")
    strict = referral_on_external(tmp_path, "c", "every_source")
    assert strict["malignant_probability"] < pooled["malignant_probability"]
    assert strict["malignant_probability"] <= 0.21
    assert strict["melanoma_sensitivity"] >= pooled["melanoma_sensitivity"]


def test_auc_change_is_paired_and_its_interval_excludes_zero_only_for_a_real_gain(tmp_path):
    from training.compare_runs import auc_change
    rng = np.random.default_rng(0)
    labels = ["mel"] * 60 + ["nv"] * 120
    base = [0.5 + 0.1 * (label == "mel") + rng.normal(0, 0.2) for label in labels]
    better = [p + 0.15 * (label == "mel") for p, label in zip(base, labels)]  # every melanoma higher
    for name, scores in (("base", base), ("better", better)):
        write_melanoma_scores(tmp_path / name / "external" / "x" / "probabilities.csv",
                              [("x", label, float(np.clip(p, 0, 1))) for label, p in zip(labels, scores)])
    change, low, high = auc_change(tmp_path / "base", tmp_path / "better", "x", resamples=300)
    assert 0 < low < change < high
    assert auc_change(tmp_path / "base", tmp_path / "base", "x", resamples=50) == (0.0, 0.0, 0.0)
    write_melanoma_scores(tmp_path / "other" / "external" / "x" / "probabilities.csv",
                          [("x", "mel", 0.9)] * 3 + [("x", "nv", 0.1)] * 3)
    with pytest.raises(SystemExit):
        auc_change(tmp_path / "base", tmp_path / "other", "x")


def test_average_of_runs_is_the_mean_of_their_probabilities_on_the_same_images(tmp_path):
    """compare_runs 'a+b': an ensemble measured from the runs' files; runs that scored
    different images are refused rather than averaged image by wrong image."""
    from training.compare_runs import read_average
    write_melanoma_scores(tmp_path / "a" / "probabilities.csv", [("s", "mel", 0.8), ("s", "nv", 0.2)])
    write_melanoma_scores(tmp_path / "b" / "probabilities.csv", [("s", "mel", 0.4), ("s", "nv", 0.0)])
    labels, probabilities, classes, sources = read_average([tmp_path / "a", tmp_path / "b"])
    assert probabilities[:, classes.index("mel")] == pytest.approx([0.6, 0.1])
    assert list(sources) == ["s", "s"]
    write_melanoma_scores(tmp_path / "c" / "probabilities.csv", [("s", "mel", 0.8)])
    with pytest.raises(SystemExit, match="same images"):
        read_average([tmp_path / "a", tmp_path / "c"])


def test_soup_averages_the_weights_of_models_with_one_description(tiny_models, tmp_path):
    """training.soup: the weights' mean, a card that names the ingredients and keeps none of
    their figures; models that classify differently are refused."""
    import keras
    from skinlesion.cards import write_card
    from skinlesion.models import load_checked_model
    from training import soup
    first = tiny_models / "classifier_7class.h5"
    model, card = load_checked_model(first)
    shifted = tmp_path / "shifted" / "classifier_7class.h5"
    shifted.parent.mkdir()
    model.set_weights([w + 1.0 for w in model.get_weights()])
    model.save(shifted)
    write_card(shifted, {k: v for k, v in card.items() if k not in ("file", "sha256")})
    out = tmp_path / "soup" / "classifier_7class.h5"
    made = soup.main([str(first), str(shifted), "--out", str(out), "--note", "test soup"])
    served, served_card = load_checked_model(out)  # the card matches the file
    original = keras.models.load_model(first, compile=False).get_weights()
    for averaged, weight in zip(served.get_weights(), original):
        assert averaged == pytest.approx(weight + 0.5, abs=1e-5)
    assert [i["file"] for i in made["soup"]["ingredients"]] == [str(first), str(shifted)]
    assert "referral" not in served_card and "external_validation" not in served_card
    with pytest.raises(SystemExit, match="differ in 'task'"):
        soup.main([str(first), str(tiny_models / "classifier_3class.h5"), "--out", str(tmp_path / "x.h5")])
