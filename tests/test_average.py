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
    from training.builders import build_mobilenet_classifier
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
    from training.export_litert import export
    export(out)  # as a shipped model is: serving runs its LiteRT files
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


def tape_grad_cam(model, crop, class_index):
    """Grad-CAM as TensorFlow computes it with a gradient tape: each member's last maps weighted
    by the mean gradient of the average's logit, summed on the largest grid (the definition the
    graphs' closed form must reproduce)."""
    import keras
    import tensorflow as tf
    from skinlesion.models import member_last_conv_names
    names = member_last_conv_names(model)
    probe = keras.Model(model.inputs, [model.get_layer(n).output for n in names] + [model.get_layer("logits").output])
    with tf.GradientTape() as tape:
        *maps, logits = probe(tf.constant(crop[None], tf.float32), training=False)
        target = logits[0, class_index]
    grads = tape.gradient(target, maps)
    grid = max(tuple(m.shape[1:3]) for m in maps)
    cam = 0.0
    for member_maps, member_grads in zip(maps, grads):
        evidence = tf.reduce_sum(member_maps * tf.reduce_mean(member_grads, axis=(1, 2))[:, None, None, :], -1)
        cam += tf.image.resize(evidence[..., None], grid)[0, ..., 0]
    return cam.numpy()


def test_grad_cam_and_saliency_of_the_average_match_tensorflows_gradients(averaged):
    """The closed-form Grad-CAM (members' class maps chained through the average's logits) and
    the saliency graph with its convertible gradients, on Keras and on LiteRT, against
    TensorFlow's own gradients of the unmodified model."""
    import tensorflow as tf
    import keras
    from skinlesion.explain import grad_cam
    from skinlesion.models import load_checked_model
    from skinlesion.runtime import keras_graphs, load_graphs
    model, card = load_checked_model(averaged)
    crop = np.random.default_rng(2).uniform(0, 255, (64, 64, 3)).astype(np.float32)
    logits_model = keras.Model(model.inputs, model.get_layer("logits").output)
    image = tf.constant(crop[None])
    for class_index in (0, 4):
        expected = tape_grad_cam(model, crop, class_index)
        with tf.GradientTape() as tape:
            tape.watch(image)
            target = logits_model(image, training=False)[0, class_index]
        gradient = np.abs(tape.gradient(target, image).numpy()).max(-1)
        for graphs in (keras_graphs(model, card), load_graphs(averaged)):
            found = grad_cam(graphs.run(crop[None]), graphs.members, class_index)
            assert np.abs(found - expected).max() <= 1e-4 * max(np.abs(expected).max(), 1e-6), graphs.runtime
            saliency = graphs.input_gradient(crop, class_index)
            assert np.linalg.norm(saliency - gradient) <= 1e-2 * np.linalg.norm(gradient), graphs.runtime


def test_the_card_lists_the_members_and_none_of_their_figures_as_its_own(members, averaged):
    from skinlesion.cards import read_card, sha256_of
    card = read_card(averaged)
    assert card["input_size"] == {"height": 64, "width": 64} and card["crop_mode"] == "masked"
    assert [m["sha256"] for m in card["average"]["members"]] == [sha256_of(path) for path in members]
    assert card["average"]["members"][1]["input_size"]["height"] == 48
    assert "validation_metrics" not in card and "referral" not in card and "reliability" not in card
    assert card["litert"]["source_sha256"] == card["sha256"] and card["litert"]["members"] == 2
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
