"""Test-time views and the Classifier wrapper."""
import numpy as np
import pytest

from skinlesion.classify import Classifier, tta_probabilities
from skinlesion.flips import tta_views
from skinlesion.runtime import keras_graphs


def test_flip4_views_are_the_four_flips():
    batch = np.arange(2 * 3 * 3 * 1, dtype=np.float32).reshape(2, 3, 3, 1)
    views = tta_views(batch, "flip4")
    assert views.shape == (8, 3, 3, 1)
    assert np.array_equal(views[2], batch[0, :, ::-1]) and np.array_equal(views[5], batch[1, ::-1])
    assert tta_views(batch, "none") is batch
    with pytest.raises(ValueError):
        tta_views(batch, "rot8")


def test_tta_averages_each_image_over_its_own_views():
    batch = np.zeros((2, 4, 4, 3), np.float32)
    batch[0, 0, 0] = 1  # image 0 has a bright top-left pixel; its flips move it to other corners
    corner = lambda views: np.stack([views[:, 0, 0, 0], 1 - views[:, 0, 0, 0]], 1)
    probabilities = tta_probabilities(corner, batch, "flip4")
    np.testing.assert_allclose(probabilities, [[0.25, 0.75], [0.0, 1.0]])


def test_classifier_with_flip4_matches_manual_average(tiny_models):
    from skinlesion.models import load_checked_model
    model, card = load_checked_model(tiny_models / "classifier_3class.h5")
    classifier = Classifier(keras_graphs(model, dict(card, test_time_augmentation="flip4")))
    x = np.random.default_rng(0).integers(0, 255, (2, 64, 64, 3)).astype(np.float32)
    manual = np.mean([model(v, training=False).numpy() for v in (x, x[:, :, ::-1], x[:, ::-1], x[:, ::-1, ::-1])], 0)
    np.testing.assert_allclose(classifier.probabilities(x), manual, atol=1e-5)
    assert classifier.probabilities(x).sum(1) == pytest.approx([1.0, 1.0], abs=1e-5)


def test_the_gates_whole_image_rides_in_the_crops_pass_without_changing_either(tiny_models):
    """outputs(crop, whole) and explain(crop, whole=...) give the crop's figures and the whole
    image's pooled features as separate passes would (serving and fit_reliability rely on it)."""
    from skinlesion.models import load_checked_model
    model, card = load_checked_model(tiny_models / "classifier_7class.h5")
    classifier = Classifier(keras_graphs(model, dict(card, test_time_augmentation="flip4")))
    rng = np.random.default_rng(1)
    crop = rng.integers(0, 255, (64, 64, 3)).astype(np.uint8)
    whole = classifier.whole_input(rng.integers(0, 255, (90, 120, 3)).astype(np.uint8))
    alone_logits, alone_features, none = classifier.outputs(crop[None])
    logits, features, image_features = classifier.outputs(crop[None], whole)
    assert none is None
    np.testing.assert_allclose(logits, alone_logits, atol=1e-5)
    np.testing.assert_allclose(features, alone_features, atol=1e-5)
    one_view = classifier.graphs.run(whole[None].astype(np.float32))["pool"]  # the whole image: one view, no flips
    np.testing.assert_allclose(image_features, one_view, atol=1e-5)
    explained = classifier.explain(crop, saliency=False, whole=whole)
    np.testing.assert_allclose(explained["image_features"], one_view, atol=1e-4)
    np.testing.assert_allclose(explained["features"], alone_features[0], atol=1e-4)


def test_referral_basis_reads_the_card():
    from skinlesion.classify import referral_basis
    card = {"referral": {"malignant_probability": 0.3, "melanoma_sensitivity": 0.91,
                         "chosen_for_melanoma_sensitivity": 0.9, "chosen_on": "pooled validation"},
            "external_validation": {"derm7pt": {"class_counts": {"mel": 251, "nv": 575},
                                                "referral": {"melanoma_sensitivity": 0.87,
                                                             "nevi_flagged_share": 0.45}}}}
    basis = referral_basis(card)
    assert basis["malignant_probability"] == 0.3 and basis["chosen_on"] == "pooled validation"
    assert basis["external"] == [{"source": "derm7pt", "melanomas": 251, "nevi": 575,
                                  "melanoma_sensitivity": 0.87, "nevi_flagged_share": 0.45}]
    assert referral_basis({"referral": None}) is None


def test_an_analysis_names_the_card_revision_as_well_as_the_weights(tiny_models, tmp_path, lesion_image):
    """A refitted threshold changes what an analysis says without changing the weights: the
    stored analysis tells the two card revisions apart, and the weights stay the same."""
    import shutil
    from skinlesion.analysis import Analyzer
    from skinlesion.cards import read_card, write_card
    from conftest import write_jpeg
    for path in tiny_models.iterdir():
        shutil.copy(path, tmp_path / path.name)
    write_jpeg(lesion_image[0], tmp_path / "lesion.jpg")
    image = (tmp_path / "lesion.jpg").read_bytes()

    def recorded():
        return Analyzer(tmp_path, tasks=("7class",)).analyze(image, "7class", explain=False).summary()["models"]

    before = recorded()
    card = read_card(tmp_path / "classifier_7class.h5")
    card["referral"]["malignant_probability"] = 0.3
    write_card(tmp_path / "classifier_7class.h5", card)
    after = recorded()
    assert after["classifier"]["sha256"] == before["classifier"]["sha256"]
    assert after["classifier"]["card"] != before["classifier"]["card"]
    assert after["segmenter"] == before["segmenter"]
