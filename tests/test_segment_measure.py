"""Masks at the image's own size, plausibility checks, measurements."""
import numpy as np
import pytest

from conftest import synthetic_lesion
from skinlesion.measure import asymmetry, colour_count, measure_lesion
from skinlesion.regions import classifier_region, lesion_box
from skinlesion.segment import clean_mask, describe_mask, load_segmenter, probability_to_mask


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
    segmenter = load_segmenter(tiny_models / "unet.h5")
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


@pytest.mark.parametrize("draw", ["row", "diagonal"])
def test_a_lesion_one_pixel_thick_is_measured_not_an_error(draw):
    # Seen in CI: an outline so thin that smoothing erased it reached cv2.arcLength as None.
    mask = np.zeros((120, 160), bool)
    if draw == "row":
        mask[60, 10:150] = True
    else:
        mask[np.arange(10, 110), np.arange(20, 120)] = True
    found = measure_lesion(np.zeros((120, 160, 3), np.uint8), mask)
    assert found["area_px"] == mask.sum() and found["max_diameter_px"] > 100
    assert found["border_irregularity"] > 10  # a line is as far from a disc as a shape gets


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


def test_outline_does_not_depend_on_which_way_up_the_photograph_is(tiny_models):
    """Issue 13.2: the U-Net's map is averaged over four flips, so a flipped photograph gets
    the flipped outline, whatever the weights (here: random ones)."""
    segmenter = load_segmenter(tiny_models / "unet.h5")
    assert segmenter.test_time_augmentation == "flip4"
    image, _ = synthetic_lesion(150, 200, seed=3)
    base = segmenter.view_maps([image])[:, 0].mean(axis=0)
    for flipped, undo in ((image[:, ::-1], lambda m: m[:, ::-1]), (image[::-1], lambda m: m[::-1]),
                          (image[::-1, ::-1], lambda m: m[::-1, ::-1])):
        averaged = segmenter.view_maps([np.ascontiguousarray(flipped)])[:, 0].mean(axis=0)
        np.testing.assert_allclose(undo(averaged), base, atol=1e-5)
    # The classifier's crop keeps the single view it was validated with.
    np.testing.assert_allclose(segmenter.probability([image])[0], segmenter.view_maps([image])[0, 0])


@pytest.mark.parametrize("change", ["half size", "double size", "shift", "flip", "rotate 90"])
def test_shape_measures_do_not_depend_on_scale_or_position(change):
    """Asymmetry and border are measured on the outline at one fixed scale, smoothed."""
    import cv2
    mask = np.zeros((450, 600), np.uint8)
    cv2.ellipse(mask, (300, 225), (120, 80), 20, 0, 360, 1, -1)
    for angle in range(0, 360, 30):  # bumps make the border irregular
        cv2.circle(mask, (int(300 + 130 * np.cos(np.radians(angle))), int(225 + 85 * np.sin(np.radians(angle)))), 12, 1, -1)
    changed = {"half size": lambda m: cv2.resize(m, (300, 225), interpolation=cv2.INTER_NEAREST),
               "double size": lambda m: cv2.resize(m, (1200, 900), interpolation=cv2.INTER_NEAREST),
               "shift": lambda m: np.roll(m, (30, -40), axis=(0, 1)),
               "flip": lambda m: m[:, ::-1], "rotate 90": np.rot90}[change](mask)
    grey = lambda m: np.full((*m.shape, 3), 150, np.uint8)  # noqa: E731
    before = measure_lesion(grey(mask), mask.astype(bool))
    after = measure_lesion(grey(changed), np.ascontiguousarray(changed).astype(bool))
    assert abs(after["asymmetry"] - before["asymmetry"]) <= 0.01
    assert abs(after["border_irregularity"] / before["border_irregularity"] - 1) < 0.02


def test_compare_measurements_marks_changes_within_noise():
    from skinlesion.measure import compare_measurements
    earlier = {"area_px": 1000, "max_diameter_px": 40.0, "asymmetry": 0.10, "border_irregularity": 1.30, "colour_count": 2}
    later = {"area_px": 1300, "max_diameter_px": 41.0, "asymmetry": 0.11, "border_irregularity": 1.31, "colour_count": 3}
    noise = {"area_px": 0.10, "max_diameter_px": 0.05, "asymmetry": 0.03, "border_irregularity": 0.10}
    rows = {row["key"]: row for row in compare_measurements({"measurements": earlier}, {"measurements": later}, noise)}
    assert rows["area_px"]["within_noise"] is False and rows["area_px"]["relative"] == pytest.approx(0.3)
    assert rows["max_diameter_px"]["within_noise"] and rows["asymmetry"]["within_noise"]
    assert rows["colour_count"]["within_noise"] is None and rows["colour_count"]["change"] == 1
    assert compare_measurements({"measurements": earlier}, None) == []
    unreliable = {"measurements": later, "outline_problems": ["the outline covers 80% of the image"]}
    assert compare_measurements({"measurements": earlier}, unreliable, noise) == []  # kept out (issue 30.4)


@pytest.mark.skipif(not __import__("conftest").shipped_models_present(), reason="needs the shipped models")
def test_shipped_pipeline_measurements_are_stable_on_the_examples():
    """Issue 13.2: a small crop with a brighter lamp, and flips, move asymmetry and border
    irregularity of the example lesions by less than 5% (the 2026-11-24 report: 1.473 -> 1.716)."""
    from conftest import EXAMPLES, MODELS
    from skinlesion.analysis import Analyzer
    from skinlesion.imageio import load_image
    analyzer = Analyzer(MODELS, tasks=())
    for path in sorted(EXAMPLES.glob("*.jpg")):
        image = load_image(path)
        height, width = image.shape[:2]
        reframed = image[height // 33:-(height // 33), width // 33:-(width // 33)].astype(np.float32) * 1.06
        variants = [image[:, ::-1], image[::-1], np.clip(reframed, 0, 255).astype(np.uint8)]
        measure = lambda im: measure_lesion(im, analyzer.segment(np.ascontiguousarray(im)).outline)  # noqa: E731
        before = measure(image)
        for variant in variants:
            after = measure(variant)
            for key in ("asymmetry", "border_irregularity"):
                assert abs(after[key] / before[key] - 1) < 0.05, (path.name, key, before[key], after[key])


# --- issue 30.4: outlines whose measurements cannot be trusted say so ------------------------

def disc(shape=(150, 200), center=(75, 100), radius=30):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return (yy - center[0]) ** 2 + (xx - center[1]) ** 2 <= radius ** 2


def test_a_clean_outline_has_no_problems():
    from skinlesion.segment import outline_problems
    outline = disc()
    assert outline_problems(outline, [outline] * 4, outline) == []


@pytest.mark.parametrize("case, words", [
    ("edge", "image's edge"), ("large", "covers"), ("regions", "separate regions"), ("flips", "flipped")])
def test_each_outline_failure_is_named(case, words):
    from skinlesion.segment import outline_problems
    outline, views, raw = disc(), None, None
    if case == "edge":
        outline = disc(center=(75, 10), radius=40)
    elif case == "large":
        outline = disc(radius=140)
    elif case == "regions":
        raw = outline | disc(center=(75, 170), radius=20)
    elif case == "flips":
        views = [outline, disc(center=(75, 130))]
    problems = outline_problems(outline, views or [outline], outline if raw is None else raw)
    assert len(problems) >= 1 and any(words in p for p in problems), problems
