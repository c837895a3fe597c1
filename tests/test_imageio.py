"""Loading every format and mode to 8-bit RGB, and refusing what cannot be analysed."""
import io

import numpy as np
import pytest
from PIL import Image

from skinlesion.imageio import ImageError, load_image


def encode(image, fmt, **options):
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


RGB = Image.fromarray(np.tile(np.arange(64, dtype=np.uint8)[None, :, None] * 4, (48, 1, 3)))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "BMP", "WEBP", "TIFF"])
def test_formats_decode_to_rgb_uint8(fmt):
    image = load_image(encode(RGB, fmt))
    assert image.shape == (48, 64, 3) and image.dtype == np.uint8
    assert abs(int(image[10, 40, 0]) - 160) <= 6  # content kept (JPEG/WebP are lossy)


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16", "I", "F", "1"])
def test_modes_become_rgb_uint8(mode):
    source = RGB.convert(mode) if mode not in ("I;16", "I", "F") else None
    if source is None:
        values = np.tile(np.arange(64, dtype=np.float64)[None] * 1000, (48, 1))
        source = Image.fromarray(values.astype({"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]))
        if mode == "I;16":
            assert source.mode == "I;16"
    fmt = "TIFF" if mode in ("CMYK", "I", "F") else "PNG"
    image = load_image(encode(source, fmt))
    assert image.shape == (48, 64, 3) and image.dtype == np.uint8
    if mode in ("I;16", "I", "F"):  # high-depth greys are scaled by their range, not clipped
        assert image[0, 0, 0] == 0 and image[0, -1, 0] == 255


def test_transparent_areas_become_white():
    rgba = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    image = load_image(encode(rgba, "PNG"))
    assert (image == 255).all()


def test_exif_orientation_is_applied():
    tall = Image.new("RGB", (40, 80), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    image = load_image(encode(tall, "JPEG", exif=exif))
    assert image.shape[:2] == (40, 80)


def test_loads_from_path_and_file_object(tmp_path):
    path = tmp_path / "x.png"
    path.write_bytes(encode(RGB, "PNG"))
    assert load_image(path).shape == (48, 64, 3)
    with open(path, "rb") as handle:
        assert load_image(handle).shape == (48, 64, 3)


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"hello, this is text and not an image", "not an image"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", "not an image"),
])
def test_refuses_non_images(data, message):
    with pytest.raises(ImageError, match=message):
        load_image(data)


def test_refuses_truncated():
    data = encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), np.uint8)), "JPEG")
    with pytest.raises(ImageError, match="damaged or truncated"):
        load_image(data[: len(data) // 2])


@pytest.mark.parametrize("size", [(1, 1), (31, 200), (200, 31)])
def test_refuses_too_small(size):
    with pytest.raises(ImageError, match="too small"):
        load_image(encode(Image.new("RGB", size), "PNG"))


def test_refuses_too_many_pixels():
    with pytest.raises(ImageError, match="too large"):
        load_image(encode(Image.new("L", (2000, 1000)), "PNG"), max_pixels=1_000_000)


def test_refuses_decompression_bomb_by_header():
    # A PNG header that claims 20000 x 20000 pixels: refused before decoding.
    data = encode(Image.new("1", (20000, 20000)), "PNG")
    assert len(data) < 200_000
    with pytest.raises(ImageError, match="too large|too many pixels"):
        load_image(data)


def test_refuses_animated():
    frames = [Image.new("RGB", (64, 64), c) for c in ((255, 0, 0), (0, 255, 0))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    with pytest.raises(ImageError):
        load_image(data)


def test_missing_path():
    with pytest.raises(ImageError, match="No such file"):
        load_image("/nonexistent/image.jpg")


@pytest.mark.parametrize("error", [TypeError("Missing dimensions"), KeyError(256), IndexError("tile")])
def test_any_decoder_failure_is_a_clean_refusal(monkeypatch, error):
    """Regression (found by the fuzzer on a mutated TIFF): Pillow raised TypeError("Missing
    dimensions") from load(); every decoder failure must become an ImageError."""
    from PIL import ImageFile
    data = encode(RGB, "PNG")

    def broken_load(self):
        raise error
    monkeypatch.setattr(ImageFile.ImageFile, "load", broken_load)
    with pytest.raises(ImageError, match="damaged"):
        load_image(data)


def test_truncated_files_stay_refused_after_another_library_relaxes_pillow():
    """WeasyPrint (the PDF report) sets Pillow's global LOAD_TRUNCATED_IMAGES when imported."""
    from PIL import ImageFile
    data = encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), np.uint8)), "JPEG")
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        with pytest.raises(ImageError, match="damaged or truncated"):
            load_image(data[: len(data) // 2])
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False
