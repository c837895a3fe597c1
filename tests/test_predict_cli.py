"""The batch CLI contract: predictions.csv, masks at image size, errors.csv, exit codes."""
import csv

import numpy as np
import pytest
from PIL import Image

import predict
from conftest import synthetic_lesion, write_jpeg


def run(paths, out, models, task="7class"):
    return predict.main([*map(str, paths), "--out", str(out), "--task", task, "--models", str(models),
                         "--quiet"])


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def folder(tmp_path):
    images = tmp_path / "images"
    (images / "sub").mkdir(parents=True)
    write_jpeg(synthetic_lesion(150, 200)[0], images / "ISIC_a.jpg")
    Image.fromarray(synthetic_lesion(97, 131, seed=2)[0]).save(images / "sub" / "b.png")
    return images


@pytest.mark.parametrize("task, classes", [("7class", ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]),
                                           ("3class", ["bcc", "mel", "nv"])])
def test_all_good_exit_0(folder, tmp_path, tiny_models, task, classes):
    out = tmp_path / "out"
    assert run([folder], out, tiny_models, task) == 0
    rows = read_rows(out / "predictions.csv")
    with open(out / "predictions.csv") as handle:
        header = handle.readline().strip().split(",")
    assert header[:2 + len(classes)] == ["image", "prediction"] + [f"p_{c}" for c in classes]
    assert sorted(r["image"] for r in rows) == ["ISIC_a", "b"]
    for row in rows:
        assert row["prediction"] in classes
        assert sum(float(row[f"p_{c}"]) for c in classes) == pytest.approx(1.0, abs=1e-4)
    assert Image.open(out / "masks" / "ISIC_a.png").size == (200, 150)
    mask = np.asarray(Image.open(out / "masks" / "b.png"))
    assert mask.shape == (97, 131) and set(np.unique(mask)) <= {0, 255}
    assert not (out / "errors.csv").exists()


def test_bad_files_are_skipped_exit_2(folder, tmp_path, tiny_models, capsys):
    (folder / "broken.jpg").write_bytes(b"not really a jpeg")
    (folder / "tiny.png").write_bytes(b"")
    out = tmp_path / "out"
    assert run([folder, folder / "ISIC_a.jpg"], out, tiny_models) == 2
    assert sorted(r["image"] for r in read_rows(out / "predictions.csv")) == ["ISIC_a", "b"]
    errors = read_rows(out / "errors.csv")
    assert sorted(e["image"] for e in errors) == ["broken", "tiny"]
    assert all(e["error"] for e in errors)
    assert "broken.jpg" in capsys.readouterr().err


def test_usage_errors_exit_1(tmp_path, tiny_models):
    assert run([tmp_path / "missing"], tmp_path / "out", tiny_models) == 1
    (tmp_path / "empty").mkdir()
    assert run([tmp_path / "empty"], tmp_path / "out", tiny_models) == 1
    assert predict.main(["x.jpg"]) == 1  # --out missing
    assert predict.main(["x.jpg", "--out", str(tmp_path), "--task", "9class"]) == 1


def test_missing_models_is_a_clear_usage_error(folder, tmp_path, capsys):
    assert run([folder], tmp_path / "out", tmp_path / "no-models") == 1
    assert "Model file missing" in capsys.readouterr().err


def test_a_large_image_gets_its_mask_at_its_own_size(tmp_path, tiny_models):
    """Images are analysed at most ANALYSIS_MAX_SIDE a side; the CSV's mask is still the file's size,
    also for a photograph whose EXIF orientation turns it."""
    from skinlesion.analysis import ANALYSIS_MAX_SIDE
    images = tmp_path / "images"
    images.mkdir()
    height, width = ANALYSIS_MAX_SIDE + 176, ANALYSIS_MAX_SIDE + 576
    write_jpeg(synthetic_lesion(height, width)[0], images / "large.jpg")
    turned = Image.fromarray(synthetic_lesion(height, width, seed=3)[0])
    exif = turned.getexif()
    exif[0x0112] = 6  # rotated 90 degrees: shown as width x height swapped
    turned.save(images / "turned.jpg", exif=exif)
    out = tmp_path / "out"
    assert run([images], out, tiny_models) == 0
    assert Image.open(out / "masks" / "large.png").size == (width, height)
    assert Image.open(out / "masks" / "turned.png").size == (height, width)


def test_sizes_are_in_pixels_and_in_mm_only_with_a_scale(folder, tmp_path, tiny_models, capsys):
    """Issue 30.5: the CSV says a lesion's size in pixels always, in mm where the scale is known."""
    assert run([folder / "ISIC_a.jpg"], tmp_path / "px", tiny_models) == 0
    (row,) = read_rows(tmp_path / "px" / "predictions.csv")
    assert row["lesion_found"] == "1" and row["outline_reliable"] in ("0", "1")  # the tiny U-Net finds it
    assert float(row["max_diameter_px"]) > 0 and int(row["area_px"]) > 0
    assert row["max_diameter_mm"] == row["area_mm2"] == row["scale_source"] == ""

    scales = tmp_path / "scales.json"
    scales.write_text('{"*": {"field_of_view_mm": 20}}')
    argv = [str(folder / "ISIC_a.jpg"), "--out", str(tmp_path / "mm"), "--models", str(tiny_models), "--quiet"]
    assert predict.main(argv + ["--scales", str(scales)]) == 0
    (row,) = read_rows(tmp_path / "mm" / "predictions.csv")
    # 20 mm across 200 px: 0.1 mm a pixel
    assert float(row["max_diameter_mm"]) == pytest.approx(float(row["max_diameter_px"]) * 0.1, abs=0.06)
    assert float(row["area_mm2"]) == pytest.approx(int(row["area_px"]) * 0.01, rel=0.01)
    assert "default field of view" in row["scale_source"]

    scales.write_text('{"*": {"field_of_view_mm": 500}}')
    assert predict.main(argv + ["--scales", str(scales)]) == 1
    assert "field_of_view_mm between" in capsys.readouterr().err
