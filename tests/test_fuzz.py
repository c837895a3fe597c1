"""Fuzzing the loader and the upload route with mutated images: never a 5xx, never a crash."""
import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image

from skinlesion.imageio import ImageError, load_image


def seeds():
    """Valid small images of every accepted format: the material the fuzzer mutates."""
    rng = np.random.default_rng(0)
    pixels = Image.fromarray(rng.integers(0, 255, (40, 48, 3), np.uint8))
    result = []
    for fmt, mode in (("JPEG", "RGB"), ("PNG", "RGBA"), ("PNG", "P"), ("BMP", "RGB"), ("WEBP", "RGB"),
                      ("TIFF", "CMYK"), ("GIF", "P")):
        buffer = io.BytesIO()
        pixels.convert(mode).save(buffer, fmt)
        result.append(buffer.getvalue())
    return result


SEEDS = seeds()


@st.composite
def mutated_images(draw):
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "header"]))
        position = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[position] ^= draw(st.integers(1, 255))
        elif kind == "cut":
            data = data[:position] + data[position + draw(st.integers(1, 64)):]
        elif kind == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=32))
        elif kind == "header" and len(data) > 24:  # sizes live in the first bytes of most formats
            data[draw(st.integers(0, 23))] = draw(st.integers(0, 255))
    return bytes(data)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_images())
def test_loader_either_decodes_or_refuses_cleanly(data):
    try:
        image = load_image(data)
    except ImageError as error:
        assert str(error)
    else:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        assert min(image.shape[:2]) >= 32


@pytest.fixture(scope="module")
def client(tiny_models, tmp_path_factory):
    from conftest import build_app
    folder = tmp_path_factory.mktemp("fuzz")
    app = build_app({"workstation": True, "models_dir": tiny_models, "upload_dir": folder / "u",
                      "heatmap_dir": folder / "h", "database": folder / "db.sqlite3", "warm_up": False})
    return app.test_client()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(data=mutated_images(), name=st.text(max_size=40), task=st.sampled_from(["7class", "3class", "", "x"]))
def test_upload_route_never_5xx(client, data, name, task):
    response = client.post("/api/analyze", data={"image": (io.BytesIO(data), name or "f"), "task": task})
    assert response.status_code < 500
    assert response.is_json
    if response.status_code != 200:
        assert response.get_json()["error"]
