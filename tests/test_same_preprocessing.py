"""Training and serving prepare an image through the very same code: identical arrays."""
import numpy as np
from PIL import Image

from conftest import synthetic_lesion, write_jpeg
from skinlesion.imageio import load_image
from skinlesion.inputs import prepare_for_classifier, prepare_for_segmenter, segmenter_input
from skinlesion.preprocess import preprocess
from skinlesion.regions import classifier_input

STEPS = ("hair_removal", "contrast", "color_constancy")


def files(tmp_path):
    image, inside = synthetic_lesion(seed=3)
    write_jpeg(image, tmp_path / "x.jpg")
    Image.fromarray(np.kron(inside.astype(np.uint8) * 255, np.ones((3, 3), np.uint8))).save(
        tmp_path / "x_segmentation.png")
    return tmp_path / "x.jpg", tmp_path / "x_segmentation.png", inside


def test_classifier_input_training_equals_serving(tmp_path):
    image_path, mask_path, inside = files(tmp_path)
    for mode in ("full", "crop", "masked"):
        trained_on = prepare_for_classifier(image_path, mask_path, STEPS, mode, 96)
        # Serving: the upload's bytes, decoded and preprocessed by the same functions.
        served = classifier_input(preprocess(load_image(image_path.read_bytes()), STEPS), inside, mode, 96)
        assert trained_on.dtype == served.dtype == np.uint8
        assert np.array_equal(trained_on, served), mode


def test_segmenter_input_training_equals_serving(tmp_path):
    image_path, mask_path, _ = files(tmp_path)
    trained_on, mask = prepare_for_segmenter(image_path, mask_path, STEPS, (64, 96))
    served = segmenter_input(preprocess(load_image(image_path.read_bytes()), STEPS), (64, 96))
    assert np.array_equal(trained_on, served)
    assert mask.shape == (64, 96)


def test_analyzer_feeds_the_classifier_what_training_prepared(tmp_path, tiny_models, monkeypatch):
    """The served classifier input equals the training one when given the same mask."""
    from skinlesion.analysis import Analyzer
    from skinlesion.segment import describe_mask
    image_path, mask_path, inside = files(tmp_path)
    analyzer = Analyzer(tiny_models, tasks=("7class",))
    monkeypatch.setattr(analyzer.segmenter, "__call__", None, raising=False)
    monkeypatch.setattr(type(analyzer.segmenter), "__call__", lambda self, image: describe_mask(inside))
    result = analyzer.analyze(image_path.read_bytes(), "7class", explain=False)
    card = analyzer.classifier("7class").card
    trained_on = prepare_for_classifier(image_path, mask_path, tuple(card["preprocessing"]),
                                        card["crop_mode"], 64)
    assert np.array_equal(result.classifier_input, trained_on)
