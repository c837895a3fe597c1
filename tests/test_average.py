"""An average of classifiers is one flat model: the members' mean probabilities, explained and
served like any classifier, and refused when its members would look at a lesion otherwise."""
import json

import numpy as np
import pytest


def tiny_member(folder, name, size, seed, **card_changes):
    """A random 7-class MobileNetV2 classifier at `size` px with a card like a trained one's."""
    import keras
    from skinlesion.cards import write_card
    from skinlesion.classes import DISPLAY_NAMES, TASKS
    from skinlesion.models import build_mobilenet_classifier
    keras.utils.set_random_seed(seed)
    model = build_mobilenet_classifier(7, size)
    kernel, bias = model.get_layer("logits").get_weights()  # a head with opinions, not uniform
    model.get_layer("logits").set_weights([kernel * 50, bias + np.arange(7) * seed])
    path = folder / f"{name}.h5"
    model.save(path)
    card = {"task": "classification-7class", "name": name, "version": "test", "arch": "mobilenetv2",
            "input_size": {"height": size, "width": size},
            "classes": [{"code": c, "name": DISPLAY_NAMES[c]} for c in TASKS["7class"]],
            "preprocessing": ["color_constancy"], "crop_mode": "masked", "test_time_augmentation": "flip4",
            "max_image_side": {"pixels": 200, "basis": "test"},
            "split": {"method": "by lesion", "val_fraction": 0.15, "seed": 42},
            "data": {"source": "tiny/ham10000"}, "training_minutes_all_epochs": 1.5,
            "validation_metrics": {"ground_truth_mask_crops": {"balanced_accuracy": 0.5}}}
    write_card(path, {**card, **card_changes})
    return path


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    folder = tmp_path_factory.mktemp("members")
    return [tiny_member(folder, "big", 64, 1), tiny_member(folder, "small", 48, 2)]


@pytest.fixture(scope="module")
def averaged(members, tmp_path_factory):
    from training import average
    out = tmp_path_factory.mktemp("average") / "classifier_7class.h5"
    average.main([*map(str, members), "--out", str(out), "--note", "test average"])
    return out


def test_the_average_gives_its_members_mean_probabilities(members, averaged):
    import keras
    from skinlesion.models import load_checked_model
    (big, _), (small, _) = (load_checked_model(path) for path in members)
    model, card = load_checked_model(averaged)
    assert all(not isinstance(layer, keras.Model) for layer in model.layers)  # one flat graph
    crops = np.random.default_rng(0).uniform(0, 255, (3, 64, 64, 3)).astype(np.float32)
    smaller = keras.layers.Resizing(48, 48, antialias=True)(crops).numpy()
    expected = (big.predict(crops, verbose=0) + small.predict(smaller, verbose=0)) / 2
    assert np.abs(model.predict(crops, verbose=0) - expected).max() < 1e-5
    assert not np.allclose(expected, big.predict(crops, verbose=0), atol=1e-3)  # the members disagree


def test_the_average_is_explained_and_served_like_one_classifier(averaged):
    from skinlesion.classify import load_classifier
    classifier = load_classifier(averaged)
    crop = np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    explained = classifier.explain(crop, saliency=True)
    view_logits, features, _ = classifier.outputs(crop[None])
    assert explained["gradcam"].shape == explained["saliency"].shape == (64, 64)
    assert features.shape == (1, 2 * 1280) and explained["features"].shape == (2 * 1280,)
    # The explainer's pooled features (from the members' maps) are the served model's "pool".
    assert np.abs(explained["features"] - features[0]).max() < 1e-4
    assert np.abs(explained["probabilities"] - classifier.probabilities(crop[None])[0]).max() < 1e-5


def test_the_card_lists_the_members_and_none_of_their_figures_as_its_own(members, averaged):
    from skinlesion.cards import read_card, sha256_of
    card = read_card(averaged)
    assert card["input_size"] == {"height": 64, "width": 64} and card["crop_mode"] == "masked"
    assert [m["sha256"] for m in card["average"]["members"]] == [sha256_of(path) for path in members]
    assert card["average"]["members"][1]["input_size"]["height"] == 48
    assert "validation_metrics" not in card and "referral" not in card and "reliability" not in card
    assert card["training_minutes_all_epochs"] == 3.0 and card["sha256"] == sha256_of(averaged)
    json.dumps(card)  # a plain JSON card


def test_members_that_look_at_a_lesion_otherwise_are_refused(members, tmp_path):
    from training import average
    other = tiny_member(tmp_path, "cropped", 48, 3, crop_mode="crop")
    with pytest.raises(SystemExit, match="crop_mode"):
        average.main([str(members[0]), str(other), "--out", str(tmp_path / "x.h5")])
    other_split = tiny_member(tmp_path, "resplit", 48, 4, split={"method": "x", "val_fraction": 0.2, "seed": 42})
    with pytest.raises(SystemExit, match="split seed"):
        average.main([str(members[0]), str(other_split), "--out", str(tmp_path / "y.h5")])
