"""Grad-CAM points at the lesion, guards against an all-zero map; overlays at the image's size."""
import numpy as np
import pytest

from conftest import synthetic_lesion
from heatmap import Explainer, normalise, overlay, place_in_image, save_rgb


def darkness_model():
    """A hand-weighted flat model whose class 0 logit is "how much dark lesion there is".

    1x1 conv computes 200 - mean(R, G, B), so lesion pixels activate strongly and skin
    weakly; the Dense layer adds the pooled features to class 0 and subtracts them from
    class 1. Grad-CAM of class 0 must light up the lesion; class 1 has no positive evidence.
    """
    import keras
    from keras import layers
    inputs = keras.Input((64, 64, 3), name="image")
    x = layers.Conv2D(4, 1, name="darkness")(inputs)
    x = layers.AveragePooling2D(4, name="downsample")(x)
    x = layers.ReLU(name="last_conv")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    logits = layers.Dense(2, name="logits")(x)
    model = keras.Model(inputs, layers.Softmax(name="probabilities")(logits))
    model.get_layer("darkness").set_weights([np.full((1, 1, 3, 4), -1 / 3, np.float32),
                                             np.full(4, 200.0, np.float32)])
    model.get_layer("logits").set_weights([np.tile(np.array([[0.05, -0.05]], np.float32), (4, 1)),
                                           np.zeros(2, np.float32)])
    return model


@pytest.fixture(scope="module")
def darkness():
    return darkness_model()


@pytest.fixture(scope="module")
def explainer(darkness):
    from skinlesion.runtime import keras_graphs
    return Explainer(keras_graphs(darkness), smoothgrad_samples=4)


def test_gradcam_peaks_on_the_lesion(explainer):
    image, inside = synthetic_lesion(64, 64, center=(18, 44), radius=(10, 10))
    result = explainer.explain(image, class_index=0)
    cam = result["gradcam"]
    assert cam.shape == (64, 64) and not result["gradcam_empty"]
    peak = np.unravel_index(np.argmax(cam), cam.shape)
    assert inside[peak]
    assert cam[inside].mean() > 3 * cam[~inside].mean()


def test_gradcam_follows_the_lesion_when_it_moves(explainer):
    image, inside = synthetic_lesion(64, 64, center=(48, 14), radius=(9, 9))
    cam = explainer.explain(image, class_index=0)["gradcam"]
    assert inside[np.unravel_index(np.argmax(cam), cam.shape)]


def test_all_zero_gradcam_is_flagged_not_amplified(explainer):
    image, _ = synthetic_lesion(64, 64)
    result = explainer.explain(image, class_index=1)  # no positive evidence for class 1
    assert result["gradcam_empty"]
    assert np.isfinite(result["gradcam"]).all() and result["gradcam"].max() == 0


def test_predicted_class_is_the_default_and_probabilities_match_the_model(explainer, darkness):
    image, _ = synthetic_lesion(64, 64)
    result = explainer.explain(image)
    expected = darkness(image[None].astype(np.float32), training=False).numpy()[0]
    assert result["class_index"] == int(np.argmax(expected))
    np.testing.assert_allclose(result["probabilities"], expected, atol=1e-5)


def test_saliency_is_a_normalised_map(explainer):
    image, _ = synthetic_lesion(64, 64)
    saliency = explainer.explain(image, class_index=0)["saliency"]
    assert saliency.shape == (64, 64) and np.isfinite(saliency).all()
    assert saliency.min() >= 0 and saliency.max() == pytest.approx(1.0)


def test_explainer_on_a_mobilenet_classifier(tiny_models):
    from skinlesion.runtime import load_graphs
    result = Explainer(load_graphs(tiny_models / "classifier_7class.h5"), smoothgrad_samples=2).explain(
        synthetic_lesion(64, 64)[0])
    assert result["probabilities"].shape == (7,)
    assert result["probabilities"].sum() == pytest.approx(1.0, abs=1e-5)
    assert result["gradcam"].shape == result["saliency"].shape == (64, 64)


def test_normalise_handles_zero_and_nan():
    assert normalise(np.zeros((4, 4))).max() == 0
    assert np.isfinite(normalise(np.full((4, 4), np.nan))).all()


def test_overlay_is_at_the_original_size_and_saved(tmp_path):
    image, _ = synthetic_lesion(150, 200)
    heat = np.zeros((64, 64), np.float32)
    heat[20:40, 20:40] = 1
    placed = place_in_image(heat, (10, 110, 50, 150), 150, 200)
    assert placed.shape == (150, 200) and placed[:10].max() == 0 and placed[60, 100] == 1
    blended = overlay(image, placed)
    assert blended.shape == image.shape and blended.dtype == np.uint8
    assert np.array_equal(blended[0, 0], image[0, 0])  # cold areas keep the original
    path = save_rgb(blended, tmp_path / "out", "x_gradcam.jpg")
    assert path.is_file() and path.parent == tmp_path / "out"
