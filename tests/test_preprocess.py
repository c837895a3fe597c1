"""Each preprocessing step does its job and keeps shape and dtype."""
import cv2
import numpy as np
import pytest

from skinlesion.preprocess import (STEP_ORDER, enhance_contrast, denoise, parse_steps, preprocess,
                                   remove_hair, shades_of_gray, sharpen)
from conftest import synthetic_lesion


@pytest.mark.parametrize("step", STEP_ORDER)
def test_every_step_keeps_shape_and_dtype(step):
    image, _ = synthetic_lesion(61, 83)
    out = preprocess(image, (step,))
    assert out.shape == image.shape and out.dtype == np.uint8


def test_hair_removal_erases_thin_dark_lines():
    image, _ = synthetic_lesion()
    hairy = image.copy()
    cv2.line(hairy, (0, 10), (199, 140), (20, 15, 10), 2)
    cleaned = remove_hair(hairy)
    on_line = np.zeros(image.shape[:2], bool)
    cv2.line(on_line.view(np.uint8), (0, 10), (199, 140), 1, 2)
    outside_lesion = on_line & (image[..., 0] > 180)
    before = np.abs(hairy[outside_lesion].astype(int) - image[outside_lesion]).mean()
    after = np.abs(cleaned[outside_lesion].astype(int) - image[outside_lesion]).mean()
    assert after < before / 3


def test_hair_removal_leaves_clean_image_alone():
    image = np.full((64, 64, 3), 180, np.uint8)
    assert np.array_equal(remove_hair(image), image)


def test_denoise_reduces_noise():
    clean = np.full((64, 64, 3), 128, np.uint8)
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 12, clean.shape), 0, 255).astype(np.uint8)
    assert denoise(noisy).std() < noisy.std() / 2


def test_sharpen_increases_edge_contrast():
    image = cv2.GaussianBlur(synthetic_lesion()[0], (0, 0), 2)
    laplacian = lambda x: cv2.Laplacian(x, cv2.CV_32F).var()
    assert laplacian(sharpen(image)) > laplacian(image) * 1.5


def test_contrast_enhancement_spreads_lightness():
    flat = (np.linspace(100, 140, 64 * 64).reshape(64, 64)[..., None].repeat(3, 2)).astype(np.uint8)
    assert enhance_contrast(flat).std() > flat.std()


def test_shades_of_gray_neutralises_a_colour_cast():
    image, _ = synthetic_lesion()
    cast = np.clip(image * np.array([1.0, 0.8, 0.6]), 0, 255).astype(np.uint8)
    chroma = lambda x: x.astype(float) / (x.astype(float).sum(-1, keepdims=True) + 1)
    # The colour (chromaticity) is restored; overall brightness may still differ.
    after = np.abs(chroma(shades_of_gray(image)) - chroma(shades_of_gray(cast))).mean()
    before = np.abs(chroma(image) - chroma(cast)).mean()
    assert after < before / 5


def test_order_of_listed_steps_does_not_matter():
    image, _ = synthetic_lesion()
    assert np.array_equal(preprocess(image, ("color_constancy", "contrast")),
                          preprocess(image, ("contrast", "color_constancy")))


def test_parse_steps():
    assert parse_steps("none") == () and parse_steps("") == ()
    assert parse_steps("hair_removal, color_constancy") == ("hair_removal", "color_constancy")
    with pytest.raises(ValueError, match="Unknown preprocessing"):
        parse_steps("magic")


def test_rejects_non_rgb_uint8():
    with pytest.raises(ValueError):
        preprocess(np.zeros((10, 10), np.uint8), ())


def test_shades_of_gray_from_histograms_matches_the_per_pixel_formula():
    """The histogram form sums the same p-norm grouped by level; only float rounding may
    move a pixel, by one level at most."""
    from skinlesion.preprocess import shades_of_gray
    rng = np.random.default_rng(0)
    for _ in range(20):
        image = rng.integers(0, 256, (rng.integers(20, 120), rng.integers(20, 120), 3)).astype(np.uint8)
        pixels = image.astype(np.float64)
        illuminant = np.power(np.mean(np.power(pixels, 6), axis=(0, 1)), 1 / 6)
        illuminant /= np.linalg.norm(illuminant)
        expected = np.clip(pixels / (illuminant * np.sqrt(3.0) + 1e-6), 0, 255).astype(np.uint8)
        assert np.abs(shades_of_gray(image).astype(int) - expected).max() <= 1


def test_the_masked_crops_skin_colour_is_the_median_of_the_skin():
    from skinlesion.regions import skin_colour
    rng = np.random.default_rng(1)
    for _ in range(200):
        height, width = rng.integers(1, 60, 2)
        image = rng.integers(0, 256, (height, width, 3)).astype(np.uint8)
        mask = rng.random((height, width)) < rng.random()
        expected = (np.median(image[~mask], axis=0).astype(np.uint8) if (~mask).any()
                    else np.full(3, 128, np.uint8))
        assert (skin_colour(image, mask) == expected).all()
