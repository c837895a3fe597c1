"""Shared fixtures: synthetic lesion images, tiny untrained models, a tiny HAM10000 folder."""
import csv
import os
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SHARED = ROOT.parent / "shared"
SHARED_HAM10000 = SHARED / "data" / "ham10000"
MODELS = ROOT / "models"
EXAMPLES = ROOT / "static" / "examples"


def synthetic_lesion(height=150, width=200, center=None, radius=None, seed=0):
    """Skin-coloured RGB uint8 image with a dark brown ellipse (the "lesion") and noise."""
    rng = np.random.default_rng(seed)
    image = np.empty((height, width, 3), np.float32)
    image[:] = (215, 170, 150)
    cy, cx = center or (height // 2, width // 2)
    ry, rx = radius or (height // 5, width // 6)
    yy, xx = np.mgrid[:height, :width]
    inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
    image[inside] = (110, 70, 50)
    image += rng.normal(0, 4, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), inside


@pytest.fixture
def lesion_image():
    return synthetic_lesion()


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """A models/ folder of tiny random-weight models with proper cards (fast to build). Seeded:
    the same random models on every run, so a test cannot pass or fail by the draw (CI once
    drew a U-Net that outlined a one-pixel sliver; test_segment_measure and test_web now test
    that case on purpose)."""
    import keras
    from skinlesion.classes import DISPLAY_NAMES, TASKS
    from skinlesion.cards import write_card
    from training.builders import build_mobilenet_classifier, build_unet
    folder = tmp_path_factory.mktemp("models")
    keras.utils.set_random_seed(0)
    unet = build_unet((64, 64, 3), decoder_filters=(16, 16, 8, 8))
    unet.save(folder / "unet.h5")
    write_card(folder / "unet.h5", {"task": "segmentation", "name": "tiny U-Net", "version": "test",
                                   "input_size": {"height": 64, "width": 64},
                                   "preprocessing": ["color_constancy"], "test_time_augmentation": "flip4"})
    for task, classes in TASKS.items():
        model = build_mobilenet_classifier(len(classes), 64)
        path = folder / f"classifier_{task}.h5"
        model.save(path)
        write_card(path, {"task": f"classification-{task}", "name": f"tiny {task}",
                          "version": "test", "input_size": {"height": 64, "width": 64},
                          "classes": [{"code": c, "name": DISPLAY_NAMES[c]} for c in classes],
                          "preprocessing": ["color_constancy"], "crop_mode": "crop",
                          "referral": {"malignant_probability": 0.5, "melanoma_sensitivity": 0.9,
                                       "chosen_for_melanoma_sensitivity": 0.9,
                                       "chosen_on": "tiny validation images"},
                          # Random weights: nothing to fit a gate or a temperature to, and the
                          # card says so (serving refuses a classifier card that is silent).
                          "reliability": {"fitted": False, "why": "tiny random-weight test model"},
                          "external_validation": {"otherclinic": {
                              "class_counts": {"mel": 20, "nv": 40},
                              "referral": {"melanoma_sensitivity": 0.85, "nevi_flagged_share": 0.4}}}})
    from training.export_litert import export  # serving runs their LiteRT files, as it runs the shipped ones
    for path in sorted(folder.glob("*.h5")):
        export(path)
    return folder


def build_app(fields):
    """The web app as a test needs it: the environment's settings with `fields` (names of
    skinlesion.settings.Settings) on top; errors propagate (Flask's TESTING)."""
    from skinlesion.settings import Settings
    from webapp import create_app
    return create_app(Settings.from_environment(**fields), testing=True)


def write_jpeg(image, path):
    from PIL import Image
    Image.fromarray(image).save(path, quality=95)


@pytest.fixture(scope="session")
def tiny_ham10000(tmp_path_factory):
    """A HAM10000-layout folder: metadata CSV, images in part_1/part_2, masks. 14 lesions."""
    from PIL import Image
    root = tmp_path_factory.mktemp("ham10000")
    classes = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
    rows = []
    for index in range(28):
        image_id = f"ISIC_{index:07d}"
        label = classes[index % 7]
        part = root / ("part_1" if index % 2 else "part_2")
        part.mkdir(exist_ok=True)
        image, inside = synthetic_lesion(seed=index, center=(60 + index % 3 * 10, 90 + index % 5 * 5))
        write_jpeg(image, part / f"{image_id}.jpg")
        masks = root / "masks"
        masks.mkdir(exist_ok=True)
        big = np.kron(inside.astype(np.uint8) * 255, np.ones((3, 3), np.uint8))  # 600x450 like HAM
        Image.fromarray(big).save(masks / f"{image_id}_segmentation.png")
        rows.append({"lesion_id": f"HAM_{index // 2:07d}", "image_id": image_id, "dx": label,
                     "dx_type": "histo", "age": "50", "sex": "male", "localization": "back"})
    with open(root / "HAM10000_metadata.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root


def shipped_models_present():
    return all((MODELS / name).is_file() for name in
               ("unet.h5", "classifier_7class.h5", "classifier_3class.h5"))


@pytest.fixture(scope="session")
def tiny_labels_csv(tmp_path_factory):
    """Another clinic in the general layout: labels.csv (image_id,dx) + images/, no masks,
    one row with an empty diagnosis (skipped, as derm7pt's "other" cases are)."""
    root = tmp_path_factory.mktemp("otherclinic")
    (root / "images").mkdir()
    rows = [("OC_%03d" % index, ("mel", "nv", "bkl")[index % 3]) for index in range(12)]
    rows.append(("OC_999", ""))
    for index, (image_id, _) in enumerate(rows):
        image, _ = synthetic_lesion(seed=100 + index)
        write_jpeg(image, root / "images" / f"{image_id}.jpg")
    with open(root / "labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_id", "dx", "diagnosis"])
        writer.writerows([(image_id, dx, "") for image_id, dx in rows])
    return root
