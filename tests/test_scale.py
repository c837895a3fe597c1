"""Millimetres where a scale is known (issue 30 item 5): a clinic's dermatoscope field of view,
or the image's own plausible resolution tags; pixels, said as such, otherwise."""
import io
import json

import pytest
from PIL import Image

from conftest import synthetic_lesion
from skinlesion.imageio import decode
from skinlesion.scale import ScaleError, in_millimetres, read_scales, scale_of


def jpeg(width=400, height=300, make=None, model=None, dpi=None, unit=None):
    image = Image.fromarray(synthetic_lesion(height, width)[0])
    exif = image.getexif()
    if make:
        exif[0x010F], exif[0x0110] = make, model
    if dpi:
        exif[0x011A], exif[0x011B], exif[0x0128] = dpi, dpi, unit
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif)
    return buffer.getvalue()


def test_a_device_setting_gives_millimetres_and_says_where_they_come_from(tmp_path):
    path = tmp_path / "scales.json"
    path.write_text(json.dumps({"DermLite DL5": {"field_of_view_mm": 25}, "*": {"field_of_view_mm": 20}}))
    scales = read_scales(path)
    named = scale_of(decode(jpeg(make="DermLite", model="DL5")), scales)
    assert named["mm_per_px"] == pytest.approx(25 / 400) and "DermLite DL5" in named["source"]
    other = scale_of(decode(jpeg()), scales)
    assert other["mm_per_px"] == pytest.approx(20 / 400) and "default" in other["source"]
    assert scale_of(decode(jpeg()), None) is None


def test_resolution_tags_count_only_when_they_describe_a_dermatoscope():
    assert scale_of(decode(jpeg(dpi=72, unit=2))) is None  # a camera's default: a lesion a metre wide
    tagged = scale_of(decode(jpeg(dpi=200, unit=3)))  # 200 px/cm: 20 mm across
    assert tagged["mm_per_px"] == pytest.approx(0.05) and "resolution tags" in tagged["source"]


@pytest.mark.parametrize("content", ['{"*": {"field_of_view_mm": 500}}', '{"*": {}}', "not json", "[1]"])
def test_a_bad_scales_file_is_refused_with_the_reason(tmp_path, content):
    path = tmp_path / "scales.json"
    path.write_text(content)
    with pytest.raises(ScaleError, match="scales|field_of_view_mm"):
        read_scales(path)


def test_measurements_on_a_shrunk_image_are_scaled_to_the_upload():
    measured = {"max_diameter_px": 100.0, "area_px": 1000}
    result = in_millimetres(measured, {"mm_per_px": 0.01, "source": "x"}, analysed_side=1000, original_side=2000)
    assert result["max_diameter_mm"] == pytest.approx(2.0) and result["area_mm2"] == pytest.approx(0.4)
    assert in_millimetres(measured, None, 1000, 2000) == measured


def test_the_page_shows_mm_and_compare_converts_only_when_both_visits_have_a_scale(tiny_models, tmp_path):
    from test_security import make_app
    path = tmp_path / "scales.json"
    path.write_text(json.dumps({"DermLite DL5": {"field_of_view_mm": 25}}))
    app = make_app(tiny_models, tmp_path, scales=str(path))
    client = app.test_client()

    def analyse(data):
        return client.post("/api/analyze", data={"image": (io.BytesIO(data), "a.jpg")}).get_json()

    scaled = analyse(jpeg(make="DermLite", model="DL5"))
    plain = analyse(jpeg())
    if not (scaled["lesion"]["measurements"] and plain["lesion"]["measurements"]):
        pytest.skip("the tiny U-Net outlined nothing measurable")
    assert scaled["lesion"]["measurements"]["max_diameter_mm"] > 0 and "scale" not in plain["lesion"]["measurements"]
    page = client.get(f"/analyses/{scaled['id']}").data.decode()
    assert " mm <small>" in page and "field of view set for DermLite DL5" in page
    assert "no physical scale" in client.get(f"/analyses/{plain['id']}").data.decode()

    from test_verdict import stored, summary
    def visit(scale):
        row = summary("7class", "nv", "bkl", 0.3, False, "confident")
        measured = {"area_px": 1000, "max_diameter_px": 40.0, "asymmetry": 0.1, "border_irregularity": 1.3,
                    "colour_count": 2, "area_fraction": 0.2, "colours": []}
        if scale:
            measured = in_millimetres(measured, {"mm_per_px": scale, "source": "a test"}, 1000, 1000)
        row["lesion"] = {"found": True, "message": "", "area_fraction": 0.2, "measurements": measured}
        return stored(app, row)
    scaled_visit, plain_visit, later_scaled = visit(0.05), visit(None), visit(0.06)
    mixed = client.get(f"/compare?a={scaled_visit}&b={plain_visit}").data.decode()
    assert "Sizes in pixels: only one visit has" in mixed and "(mm)" not in mixed
    both = client.get(f"/compare?a={scaled_visit}&b={later_scaled}").data.decode()
    assert "Largest diameter (mm)" in both and "Sizes in millimetres" in both and "2.4" in both
