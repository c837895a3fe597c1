"""Serving runs LiteRT: the same answers as Keras, no TensorFlow in a serving process, and a
model whose LiteRT files are missing, stale or changed is refused at start with the command
that fixes it."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import EXAMPLES, MODELS, ROOT, SHARED, shipped_models_present, synthetic_lesion

from training.export_litert import TOLERANCES  # LiteRT against Keras on the same weights, and why


def serving_comparison(models_dir, images, tasks):
    """Every served output of both runtimes on `images`: the largest differences."""
    from skinlesion.analysis import Analyzer
    served, reference = Analyzer(models_dir, tasks), Analyzer(models_dir, tasks, runtime="keras")
    worst = {"probabilities": 0.0, "mask_pixels": 0, "gradcam": 0.0, "saliency_relative_l2": 0.0}
    for image in images:
        for task in tasks:
            a = served.analyze(image, task, explain=False)
            b = reference.analyze(image, task, explain=False)
            worst["probabilities"] = max(worst["probabilities"],
                                         max(abs(a.probabilities[c] - b.probabilities[c]) for c in a.probabilities))
            worst["mask_pixels"] = max(worst["mask_pixels"], int((a.mask != b.mask).sum()))
            classifier_a, classifier_b = served.classifier(task), reference.classifier(task)
            crop = a.classifier_input
            ea = classifier_a.explain(crop, saliency=False)
            eb = classifier_b.explain(crop, saliency=False)
            worst["gradcam"] = max(worst["gradcam"], float(np.abs(ea["gradcam"] - eb["gradcam"]).max()))
            ga = classifier_a.graphs.input_gradient(crop, ea["class_index"])
            gb = classifier_b.graphs.input_gradient(crop, ea["class_index"])
            worst["saliency_relative_l2"] = max(worst["saliency_relative_l2"],
                                                float(np.linalg.norm(ga - gb) / max(np.linalg.norm(gb), 1e-30)))
    return worst


def assert_same_answers(worst):
    assert worst["probabilities"] <= TOLERANCES["probabilities"], worst
    assert worst["mask_pixels"] == 0, worst
    assert worst["gradcam"] <= TOLERANCES["gradcam"], worst  # on the [0, 1] map
    assert worst["saliency_relative_l2"] <= TOLERANCES["saliency_relative_l2"], worst


def test_litert_serves_what_keras_computes_on_the_tiny_models(tiny_models):
    images = [synthetic_lesion(150, 200, seed=seed)[0] for seed in range(3)]
    assert_same_answers(serving_comparison(tiny_models, images, ("7class", "3class")))


SHARED_IMAGES = [SHARED / "data" / "ham10000" / "HAM10000_images", SHARED / "data" / "isic_acral" / "images",
                 SHARED / "data" / "isic2017" / "images"]


@pytest.mark.skipif(not shipped_models_present() or not all(p.is_dir() for p in SHARED_IMAGES),
                    reason="needs the shipped models and ../shared's images")
def test_litert_serves_what_keras_computes_on_real_images():
    """The shipped models on real dermoscopy from three sources (four images each)."""
    from skinlesion.imageio import load_image
    paths = [path for folder in SHARED_IMAGES for path in sorted(folder.glob("*.jpg"))[:4]]
    images = [load_image(str(path)) for path in paths]
    assert_same_answers(serving_comparison(MODELS, images, ("7class", "3class")))


NO_TENSORFLOW = """
import sys
{body}
loaded = sorted(name for name in sys.modules if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"))
assert not loaded, loaded[:5]
print("no tensorflow")
"""


def run_without_tensorflow(body):
    result = subprocess.run([sys.executable, "-c", NO_TENSORFLOW.format(body=body)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "no tensorflow" in result.stdout, result.stderr[-2000:]


def test_an_analysis_through_the_app_imports_no_tensorflow(tiny_models, tmp_path):
    image = str(EXAMPLES / sorted(p.name for p in EXAMPLES.glob("*.jpg"))[0])
    run_without_tensorflow(f"""
from app import create_app
from pathlib import Path
from skinlesion.settings import Settings
app = create_app(Settings.from_environment(**{{"workstation": True, "models_dir": Path({str(tiny_models)!r}),
                  "database": Path({str(tmp_path / "db.sqlite3")!r}), "upload_dir": Path({str(tmp_path / "uploads")!r}),
                  "heatmap_dir": Path({str(tmp_path / "heatmap")!r})}}))
client = app.test_client()
with open({image!r}, "rb") as handle:
    answer = client.post("/api/analyze", data={{"image": (handle, "lesion.jpg"), "task": "3class"}})
assert answer.status_code == 200, (answer.status_code, answer.get_data(as_text=True)[:500])
assert answer.get_json()["prediction"], answer.get_json()
""")


def test_the_batch_cli_imports_no_tensorflow(tiny_models, tmp_path):
    image = str(EXAMPLES / sorted(p.name for p in EXAMPLES.glob("*.jpg"))[0])
    run_without_tensorflow(f"""
import runpy
sys.argv = ["predict.py", {image!r}, "--out", {str(tmp_path / "out")!r}, "--models", {str(tiny_models)!r}]
try:
    runpy.run_path("predict.py", run_name="__main__")
except SystemExit as stop:
    assert not stop.code, stop.code
""")


def test_gunicorns_master_check_imports_no_tensorflow(tiny_models):
    run_without_tensorflow(f"""
from skinlesion.cards import check_model_file, model_paths
for path in model_paths({str(tiny_models)!r}, ("7class", "3class")):
    check_model_file(path, served=True)
""")


@pytest.fixture
def models_copy(tiny_models, tmp_path):
    folder = tmp_path / "models"
    shutil.copytree(tiny_models, folder)
    return folder


def edit_card(path, change):
    card_file = path.with_suffix(".json")
    card = json.loads(card_file.read_text())
    change(card)
    card_file.write_text(json.dumps(card))


def refusal(models_dir):
    from skinlesion.analysis import Analyzer
    from skinlesion.cards import ModelFileError
    with pytest.raises(ModelFileError) as refused:
        Analyzer(models_dir, ("7class",))
    return str(refused.value)


def test_a_model_never_exported_is_refused_with_the_command(models_copy):
    edit_card(models_copy / "classifier_7class.h5", lambda card: card.pop("litert"))
    message = refusal(models_copy)
    assert "no LiteRT export" in message and "python -m training.export_litert --model" in message


def test_a_stale_export_is_refused(models_copy):
    """The .h5 was retrained and its card rewritten, but the .tflite is the old model's."""
    edit_card(models_copy / "classifier_7class.h5",
              lambda card: card["litert"].update(source_sha256="0" * 64))
    message = refusal(models_copy)
    assert "exported from another version" in message and "training.export_litert" in message


def test_a_changed_or_missing_tflite_is_refused(models_copy):
    forward = models_copy / "classifier_7class.tflite"
    forward.write_bytes(forward.read_bytes()[:-1] + b"\0")
    assert "does not match the sha256" in refusal(models_copy)
    forward.unlink()
    assert "is missing" in refusal(models_copy)
    assert not (models_copy / "unet.saliency.tflite").exists()  # a U-Net has a forward graph only


def test_the_keras_runtime_still_loads_a_model_not_exported(models_copy):
    """Training and evaluation read the .h5 itself: no export needed there."""
    from skinlesion.classify import load_classifier
    edit_card(models_copy / "classifier_7class.h5", lambda card: card.pop("litert"))
    classifier = load_classifier(models_copy / "classifier_7class.h5", "keras")
    assert classifier.probabilities(np.zeros((1, 64, 64, 3), np.uint8)).shape == (1, 7)


def test_the_export_records_its_files_and_checks_in_the_card(tiny_models):
    from skinlesion.cards import read_card, sha256_of
    for name in ("unet", "classifier_7class", "classifier_3class"):
        card = read_card(tiny_models / f"{name}.h5")
        section = card["litert"]
        assert section["source_sha256"] == card["sha256"]
        graphs = ["forward"] + (["saliency"] if name != "unet" else [])
        for graph in graphs:
            assert sha256_of(tiny_models / section[graph]["file"]) == section[graph]["sha256"]
        assert ("saliency" in section) == (name != "unet")
        differences = section["check"]["largest_differences_from_keras"]
        assert differences.get("probabilities", differences.get("mask")) <= 1e-4


@pytest.mark.skipif(not shipped_models_present(), reason="needs the shipped models")
def test_every_shipped_model_has_a_current_litert_export():
    from skinlesion.cards import check_model_file, model_paths
    for path in model_paths(MODELS, ("7class", "3class")):
        check_model_file(Path(path), served=True)
