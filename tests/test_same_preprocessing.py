"""Training and serving prepare an image through the very same code: identical arrays."""
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import synthetic_lesion, write_jpeg
from skinlesion.imageio import load_image
from skinlesion.inputs import at_trained_resolution, prepare_for_classifier, prepare_for_segmenter, segmenter_input
from skinlesion.preprocess import preprocess
from skinlesion.regions import classifier_input

STEPS = ("hair_removal", "contrast", "color_constancy")


def files(tmp_path):
    image, inside = synthetic_lesion(seed=3)
    write_jpeg(image, tmp_path / "x.jpg")
    Image.fromarray(np.kron(inside.astype(np.uint8) * 255, np.ones((3, 3), np.uint8))).save(
        tmp_path / "x_segmentation.png")
    return tmp_path / "x.jpg", tmp_path / "x_segmentation.png", inside


@pytest.mark.parametrize("max_image_side", [None, 120])
def test_classifier_input_training_equals_serving(tmp_path, max_image_side):
    image_path, mask_path, inside = files(tmp_path)
    for mode in ("full", "crop", "masked"):
        trained_on = prepare_for_classifier(image_path, mask_path, STEPS, mode, 96, max_image_side=max_image_side)
        # Serving: the upload's bytes, decoded, shrunk and preprocessed by the same functions;
        # the mask at the upload's size.
        image = at_trained_resolution(load_image(image_path.read_bytes()), max_image_side)
        served = classifier_input(preprocess(image, STEPS), inside, mode, 96)
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


def test_a_larger_image_is_shrunk_to_the_side_the_classifier_was_trained_at():
    image = np.zeros((300, 400, 3), np.uint8)
    assert at_trained_resolution(image, None) is image
    assert at_trained_resolution(image, 400) is image
    assert at_trained_resolution(image, 200).shape == (150, 200, 3)


def test_analyzer_looks_at_the_image_at_the_cards_resolution(tmp_path, tiny_models, monkeypatch):
    """A card's max_image_side reaches the served crop as training's prepare applies it."""
    from skinlesion.analysis import Analyzer
    from skinlesion.segment import describe_mask
    models = tmp_path / "models"
    shutil.copytree(tiny_models, models)
    card_file = models / "classifier_7class.json"
    card = json.loads(card_file.read_text())
    card["max_image_side"] = {"pixels": 100}
    card_file.write_text(json.dumps(card))
    image_path, mask_path, inside = files(tmp_path)
    analyzer = Analyzer(models, tasks=("7class",))
    monkeypatch.setattr(type(analyzer.segmenter), "__call__", lambda self, image: describe_mask(inside))
    result = analyzer.analyze(image_path.read_bytes(), "7class", explain=False)
    steps, mode = tuple(card["preprocessing"]), card["crop_mode"]
    shrunk = prepare_for_classifier(image_path, mask_path, steps, mode, 64, max_image_side=100)
    assert np.array_equal(result.classifier_input, shrunk)
    assert not np.array_equal(shrunk, prepare_for_classifier(image_path, mask_path, steps, mode, 64))
    assert result.image.shape == (150, 200, 3)  # the page keeps the image's own size
