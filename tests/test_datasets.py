"""Each supported data layout is read; a wrong layout says what was expected."""
import csv

import pytest
from PIL import Image

from training.datasets import DatasetError, detect_layout, read_dataset, split_by_group


def image(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 40), (200, 150, 120)).save(path)


def test_ham10000(tiny_ham10000):
    samples = read_dataset(tiny_ham10000)
    assert detect_layout(tiny_ham10000) == "ham10000" and len(samples) == 28
    assert all(s.mask is not None for s in samples)
    three = read_dataset(tiny_ham10000, classes=("bcc", "mel", "nv"))
    assert {s.label for s in three} == {"bcc", "mel", "nv"}


def test_split_keeps_each_lesion_on_one_side(tiny_ham10000):
    samples = read_dataset(tiny_ham10000)
    train, val = split_by_group(samples, 0.3, seed=1)
    assert {s.group for s in train}.isdisjoint({s.group for s in val})
    assert len(train) + len(val) == len(samples) and val
    assert split_by_group(samples, 0.3, seed=1) == (train, val)


def test_isic2019_maps_ak_and_skips_classes_the_task_lacks(tmp_path):
    columns = ["image", "MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK"]
    rows = [("ISIC_1", "AK"), ("ISIC_2", "MEL"), ("ISIC_3", "SCC"), ("ISIC_4", "NV")]
    with open(tmp_path / "ISIC_2019_Training_GroundTruth.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for name, label in rows:
            writer.writerow([name] + ["1.0" if c == label else "0.0" for c in columns[1:]])
            image(tmp_path / "images" / f"{name}.jpg")
    messages = []
    samples = read_dataset(tmp_path, classes=("bcc", "mel", "nv"), report=messages.append)
    assert sorted(s.label for s in samples) == ["mel", "nv"]
    assert any("skipped" in m and "AK" in m and "SCC" in m for m in messages)
    assert {s.label for s in read_dataset(tmp_path, report=messages.append)} == {"akiec", "mel", "nv"}


def test_isic_segmentation_pairs(tmp_path):
    image(tmp_path / "ISIC_0000001.jpg")
    image(tmp_path / "ISIC_0000001_segmentation.png")
    image(tmp_path / "ISIC_0000002.jpg")  # no mask: skipped
    samples = read_dataset(tmp_path, report=lambda m: None)
    assert detect_layout(tmp_path) == "isic_segmentation"
    assert len(samples) == 1 and samples[0].mask.name == "ISIC_0000001_segmentation.png"


def test_ph2(tmp_path):
    for name in ("IMD002", "IMD058"):
        image(tmp_path / name / f"{name}_Dermoscopic_Image" / f"{name}.bmp")
        image(tmp_path / name / f"{name}_lesion" / f"{name}_lesion.bmp")
    (tmp_path / "PH2_dataset.txt").write_text(
        "|| Name || Histological Diagnosis || Clinical Diagnosis ||\n"
        "|| IMD002 ||  || 1 ||\n|| IMD058 ||  || 2 ||\n")
    samples = read_dataset(tmp_path)
    assert {s.image.stem: s.label for s in samples} == {"IMD002": "nv", "IMD058": "mel"}
    assert all(s.mask is not None for s in samples)


def test_class_folders(tmp_path):
    image(tmp_path / "mel" / "a.jpg")
    image(tmp_path / "nv" / "b.png")
    assert sorted(s.label for s in read_dataset(tmp_path)) == ["mel", "nv"]


def test_wrong_layouts_say_what_was_expected(tmp_path):
    image(tmp_path / "melanomas" / "a.jpg")
    with pytest.raises(DatasetError, match="Expected one of: HAM10000"):
        read_dataset(tmp_path)
    with pytest.raises(DatasetError, match="not found"):
        read_dataset(tmp_path / "missing")


def test_labels_csv_is_the_general_form(tiny_labels_csv):
    messages = []
    samples = read_dataset(tiny_labels_csv, report=messages.append)
    assert detect_layout(tiny_labels_csv) == "labels_csv"
    assert len(samples) == 12 and {s.label for s in samples} == {"mel", "nv", "bkl"}
    assert any("skipped" in m and "(none)" in m for m in messages)  # the row without dx
    assert all(s.source == tiny_labels_csv.name and s.resize_to is None and s.mask is None
               for s in samples)
    assert {s.label for s in read_dataset(tiny_labels_csv, classes=("mel", "nv"))} == {"mel", "nv"}


def test_isic2017_labels_undo_the_squash(tmp_path):
    """ISIC 2017 in ../shared was squashed to 256x256 from 4:3: its samples say so."""
    image(tmp_path / "images" / "ISIC_0000001.jpg")
    (tmp_path / "labels.csv").write_text("image_id,dx,isic2017_split\nISIC_0000001,mel,train\n")
    (sample,) = read_dataset(tmp_path)
    assert sample.resize_to == (192, 256)
    from skinlesion.inputs import load_sample_image
    assert load_sample_image(sample.image, sample.resize_to).shape == (192, 256, 3)


def test_each_source_is_split_on_its_own(tiny_ham10000, tiny_labels_csv):
    from training.datasets import split_for_task, split_sources
    classes = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
    train, val = split_sources([tiny_ham10000, tiny_labels_csv], classes, 0.3, seed=1)
    ham_train, ham_val = split_for_task(read_dataset(tiny_ham10000), classes, 0.3, seed=1)
    # Adding a source leaves the first source's split (its validation lesions) unchanged.
    assert [s for s in train if s.source == tiny_ham10000.name] == ham_train
    assert [s for s in val if s.source == tiny_ham10000.name] == ham_val
    assert {s.source for s in val} == {tiny_ham10000.name, tiny_labels_csv.name}


def test_a_labels_csv_with_patients_keeps_a_lesion_and_a_patient_on_one_side(tmp_path):
    """isic_acral's layout: images linked by lesion_id or patient_id (or through each other) are
    one group of the split; an image with neither is its own."""
    import csv
    from conftest import synthetic_lesion, write_jpeg
    from training.datasets import read_dataset, split_for_task
    (tmp_path / "images").mkdir()
    rows = [("A1", "mel", "L1", ""), ("A2", "mel", "L1", "P1"), ("A3", "nv", "L2", "P1"),  # one patient
            ("B1", "nv", "", "P2"), ("B2", "nv", "L3", "P2"), ("C1", "nv", "", ""), ("D1", "mel", "L4", "")]
    rows += [(f"E{i}", ("mel", "nv")[i % 2], f"L{10 + i}", f"P{10 + i}") for i in range(20)]
    with open(tmp_path / "labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_id", "dx", "lesion_id", "patient_id"])
        writer.writerows(rows)
    for index, (image_id, *_) in enumerate(rows):
        write_jpeg(synthetic_lesion(seed=index)[0], tmp_path / "images" / f"{image_id}.jpg")
    samples = {s.image.stem: s for s in read_dataset(tmp_path)}
    assert samples["A1"].group == samples["A2"].group == samples["A3"].group  # lesion L1 -> patient P1
    assert samples["B1"].group == samples["B2"].group != samples["A1"].group
    assert len({samples[i].group for i in ("A1", "B1", "C1", "D1")}) == 4
    for seed in range(5):
        train, val = split_for_task(list(samples.values()), ["mel", "nv"], 0.3, seed)
        assert not {s.group for s in train} & {s.group for s in val}
        assert {"A1", "A2", "A3"} <= {s.image.stem for s in train} or {"A1", "A2", "A3"} <= {s.image.stem for s in val}
