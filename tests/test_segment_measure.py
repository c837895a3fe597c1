"""Masks at the image's own size, plausibility checks, measurements."""
import numpy as np
import pytest

from conftest import synthetic_lesion
from skinlesion.measure import asymmetry, colour_count, measure_lesion
from skinlesion.regions import classifier_region, lesion_box
from skinlesion.segment import Segmenter, clean_mask, describe_mask, probability_to_mask


def test_clean_mask_keeps_largest_region_and_fills_holes():
    mask = np.zeros((50, 50), bool)
    mask[10:30, 10:30] = True
    mask[15:20, 15:20] = False  # a hole
    mask[40:42, 40:42] = True  # a speck
    cleaned = clean_mask(mask)
    assert cleaned[17, 17] and not cleaned[41, 41] and cleaned.sum() == 400


@pytest.mark.parametrize("fill, found", [(0.0, False), (1.0, False), (0.3, True)])
def test_describe_mask_flags_empty_and_implausible(fill, found):
    mask = np.zeros((100, 100), bool)
    mask[: int(100 * fill)] = True
    assert describe_mask(mask).found is found
    if not found:
        assert describe_mask(mask).reason


def test_probability_map_resized_to_image_size():
    probability = np.zeros((24, 32), np.float32)
    probability[8:16, 10:20] = 0.9
    mask = probability_to_mask(probability, 451, 603)
    assert mask.shape == (451, 603) and mask.dtype == bool and mask.any()


@pytest.mark.parametrize("shape", [(150, 200), (97, 333), (640, 480)])
def test_segmenter_returns_mask_at_input_size(tiny_models, shape):
    from skinlesion.models import load_checked_model
    segmenter = Segmenter(*load_checked_model(tiny_models / "unet.h5"))
    image, _ = synthetic_lesion(*shape)
    segmentation = segmenter(image)
    assert segmentation.mask.shape == shape


def test_lesion_box_is_square_with_margin_and_inside():
    mask = np.zeros((150, 200), bool)
    mask[50:90, 60:120] = True
    top, bottom, left, right = lesion_box(mask)
    assert bottom - top == right - left
    assert top <= 50 and bottom >= 90 and left <= 60 and right >= 120
    assert top >= 0 and left >= 0 and bottom <= 150 and right <= 200


def test_masked_mode_replaces_background():
    image, inside = synthetic_lesion()
    image[0:5, 0:5] = (0, 255, 0)
    region = classifier_region(image, inside, "masked")
    assert not (region == (0, 255, 0)).all(-1).any()
    assert classifier_region(image, None, "crop") is image  # no mask: the whole image


def test_measurements_of_a_circle():
    yy, xx = np.mgrid[:200, :200]
    mask = (yy - 100) ** 2 + (xx - 100) ** 2 <= 50 ** 2
    image = np.zeros((200, 200, 3), np.uint8)
    image[mask] = (100, 60, 40)
    found = measure_lesion(image, mask)
    assert abs(found["max_diameter_px"] - 100) < 3
    assert found["asymmetry"] < 0.05
    assert 0.95 < found["border_irregularity"] < 1.2
    assert found["colour_count"] == 1 and found["colours"] == ["dark brown"]


def test_asymmetry_grows_for_an_irregular_shape():
    mask = np.zeros((200, 200), bool)
    mask[50:150, 50:100] = True
    mask[50:80, 100:170] = True  # an L shape
    circle = np.hypot(*np.mgrid[-50:50, -50:50]) < 40
    assert asymmetry(mask) > asymmetry(circle) + 0.1


def test_colour_count_counts_distinct_colours():
    image = np.zeros((10, 40, 3), np.uint8)
    image[:, :10] = (35, 30, 30)
    image[:, 10:20] = (100, 60, 40)
    image[:, 20:30] = (180, 120, 80)
    image[:, 30:] = (110, 120, 140)
    count, names = colour_count(image, np.ones((10, 40), bool))
    assert count == 4 and "black" in names and "blue-grey" in names
