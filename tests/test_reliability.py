"""Reliability: calibration, unusual-image score, dermoscopy gate, uncertainty, site calibration.

Unit tests on synthetic images and tiny models; the fitting script runs end to end on a
tiny data folder, and the app, the API and the CLI then use what it wrote.
"""
import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import synthetic_lesion, write_jpeg
from skinlesion.reliability import (FeatureDensity, NotDermoscopyError, calibrated_probabilities,
                                    colourfulness, state_of)


def grey_picture(size=(150, 200), seed=0):
    """A greyscale photograph-like image (an X-ray or a scan has no colour)."""
    rng = np.random.default_rng(seed)
    grey = np.clip(rng.normal(120, 40, size), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, -1)


def jpeg_bytes(image):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG")
    return buffer.getvalue()


def test_colourfulness_separates_grey_from_skin():
    lesion, _ = synthetic_lesion()
    assert colourfulness(grey_picture()) < 1.0 < 10.0 < colourfulness(lesion)


def test_temperature_scaling_softens_and_keeps_the_ranking():
    logits = np.array([[[4.0, 1.0, 0.0]], [[3.0, 2.0, 0.0]]])  # two views of one image
    sharp, soft = calibrated_probabilities(logits, 1.0), calibrated_probabilities(logits, 3.0)
    assert sharp.sum() == pytest.approx(1.0) and soft.sum() == pytest.approx(1.0)
    assert soft.max() < sharp.max() and soft.argmax() == sharp.argmax()


def test_feature_density_scores_far_points_higher():
    rng = np.random.default_rng(0)
    training = rng.normal(0, 1, (500, 20)) * np.linspace(3, 0.5, 20)
    density = FeatureDensity.fit(training, components=5)
    typical = density.score(training[:50]).mean()
    assert typical == pytest.approx(1.0, abs=0.25)  # about 1 for the training distribution
    assert density.score(training[:1] + 10).item() > 3 * typical
    restored = FeatureDensity.from_arrays(density.arrays("x"), "x")
    np.testing.assert_allclose(restored.score(training[:5]), density.score(training[:5]), rtol=1e-5)


def test_the_state_puts_the_most_serious_first():
    assert state_of(False, True, ["far"], ["close"], 2.0).state == "no_lesion"
    unusual = state_of(True, True, ["far"], ["close"], 2.0)
    assert unusual.state == "unusual" and "differs from the images the models were trained on" in unusual.message
    assert unusual.unusual_image and unusual.uncertain
    uncertain = state_of(True, False, [], ["the two most likely diagnoses are close"], 0.9)
    assert uncertain.state == "uncertain" and "close" in uncertain.message
    assert state_of(True, False, [], [], 0.9).state == "confident"


def test_unusual_marks_keep_every_source_within_the_budget():
    """The source whose scores run highest sets each threshold, and the lesions the U-Net
    does not find come out of the budget first."""
    from training.fit_reliability import held_out_unusual, mark_thresholds, marked_share
    rng = np.random.default_rng(0)
    sources = np.array(["near"] * 600 + ["far"] * 400)
    scores = {"crop": np.r_[rng.normal(0, 1, 600), rng.normal(3, 1, 400)],
              "image": np.r_[rng.normal(0, 1, 600), rng.normal(0, 1, 400)]}
    no_lesion = np.zeros(1000, bool)
    no_lesion[600:604] = True  # 1% of "far": 1% of the budget left, half a percent per mark
    thresholds = mark_thresholds(scores, sources, no_lesion, 0.02)
    assert thresholds["crop"] == pytest.approx(np.percentile(scores["crop"][600:], 99.5))
    marked = marked_share(scores, thresholds, no_lesion)
    for name in ("near", "far"):
        assert marked[sources == name].mean() <= 0.02
    assert marked[sources == "near"].mean() < 0.01  # held to the far source's thresholds
    # a budget the lesions not found already spend leaves no mark below every validation score
    assert mark_thresholds(scores, sources, no_lesion, 0.01)["crop"] == scores["crop"].max()
    groups = np.array([f"lesion{i // 2}" for i in range(1000)])  # two images per lesion
    held_out = held_out_unusual(scores, sources, groups, no_lesion, 0.02, seed=0)
    assert set(held_out) == {"near", "far"} and all(0 <= share < 0.06 for share in held_out.values())


@pytest.fixture(scope="module")
def fitted_models(tiny_models, tiny_ham10000, tiny_labels_csv, tmp_path_factory):
    """The tiny models with the 7-class classifier's reliability fitted by the real script."""
    from training import fit_reliability
    folder = tmp_path_factory.mktemp("fitted") / "models"
    shutil.copytree(tiny_models, folder)
    path = folder / "classifier_7class.h5"
    card = json.loads(path.with_suffix(".json").read_text())
    card["split"] = {"val_fraction": 0.3, "seed": 1}
    path.with_suffix(".json").write_text(json.dumps(card))
    fit_reliability.main(["--model", str(path), "--data", str(tiny_ham10000), str(tiny_labels_csv),
                          "--external", str(tiny_labels_csv), "--models", str(folder),
                          "--train-sample", "40", "--components", "8",
                          "--not-dermoscopy-per-kind", "3", "--plots", str(folder / "plots"),
                          "--referral-sensitivity", "0.95"])
    return folder


def test_fit_writes_the_card_section_and_a_checked_file(fitted_models):
    from skinlesion.cards import sha256_of
    card = json.loads((fitted_models / "classifier_7class.json").read_text())
    section = card["reliability"]
    npz = fitted_models / section["file"]
    assert npz.is_file() and section["sha256"] == sha256_of(npz)
    assert section["temperature"] > 0 and card["calibration"]["temperature"] == section["temperature"]
    assert set(section["thresholds"]) == {"min_colourfulness", "gate_refuse", "gate_mark",
                                          "image_refuse", "image_mark", "unusual_ood"}
    assert {"margin", "grey_zone"} <= set(section["uncertain"])
    assert card["referral"]["chosen_on"].startswith("calibrated serving-pipeline validation")
    assert card["referral"]["chosen_for_melanoma_sensitivity"] == 0.95  # what the result page states
    measured = section["measured"]
    assert measured["unusual_budget"] == 0.02 and measured["unusual_held_out"]["share"]
    assert set(measured["not_dermoscopy"]["test_set"]) >= {"documents", "flat", "photos", "medical"}
    assert "kind_left_out_of_gate_training" in measured["not_dermoscopy"]
    assert card["external_validation"]  # scored at the new threshold
    assert (fitted_models / "plots").is_dir()


def test_a_changed_reliability_file_is_refused(fitted_models, tmp_path):
    from skinlesion.classify import load_classifier
    from skinlesion.models import ModelFileError
    copy = tmp_path / "models"
    shutil.copytree(fitted_models, copy)
    npz = next(copy.glob("*.reliability.npz"))
    npz.write_bytes(npz.read_bytes() + b"x")
    with pytest.raises(ModelFileError, match="does not match"):
        load_classifier(copy / "classifier_7class.h5")
    # The check needs no TensorFlow: gunicorn's master runs it before forking.
    from skinlesion.cards import check_model_file
    npz.unlink()
    with pytest.raises(ModelFileError, match="missing"):
        check_model_file(copy / "classifier_7class.h5")


def test_analysis_carries_its_reliability_and_refuses_greyscale(fitted_models):
    from skinlesion.analysis import Analyzer
    analyzer = Analyzer(fitted_models, tasks=("7class",))
    result = analyzer.analyze(synthetic_lesion(seed=5)[0], "7class")
    reliability = result.summary()["reliability"]
    assert reliability["state"] in ("confident", "uncertain", "unusual", "no_lesion")
    assert isinstance(reliability["ood_score"], float) and reliability["message"]
    assert result.low_confidence == reliability["uncertain"]
    with pytest.raises(NotDermoscopyError) as refused:
        analyzer.analyze(grey_picture(), "7class")
    assert refused.value.status == 422 and "not analysed" in str(refused.value)


def test_web_and_api_refuse_what_is_not_dermoscopy_with_422(fitted_models, tmp_path):
    from conftest import build_app
    app = build_app({"workstation": True, "models_dir": fitted_models, "tasks": ("7class",),
                      "upload_dir": tmp_path / "u", "heatmap_dir": tmp_path / "h",
                      "database": tmp_path / "db.sqlite3", "warm_up": False})
    client = app.test_client()
    response = client.post("/api/analyze", data={"image": (io.BytesIO(jpeg_bytes(grey_picture())), "xray.jpg")})
    assert response.status_code == 422 and "not analysed" in response.get_json()["error"]
    good = client.post("/api/analyze", data={"image": (io.BytesIO(jpeg_bytes(synthetic_lesion()[0])), "a.jpg")})
    body = good.get_json()
    assert good.status_code == 200
    assert set(body["reliability"]) == {"state", "ood_score", "unusual_image", "uncertain", "message"}
    with client.session_transaction() as session:
        session["csrf_token"] = "t"
    page = client.post("/analyze", data={"csrf_token": "t", "task": "7class", "case": "P-9",
                                         "image": (io.BytesIO(jpeg_bytes(grey_picture())), "xray.jpg")},
                       content_type="multipart/form-data")
    html = page.data.decode()
    assert page.status_code == 422 and "not analysed" in html and 'value="P-9"' in html
    assert len(list((tmp_path / "u").iterdir())) == 1  # only the dermoscopic upload was stored
    history = client.get("/history").data.decode()
    assert "reliability" in history and body["reliability"]["state"].replace("_", " ")[:4].lower() in history.lower()


def test_predict_cli_lists_refusals_in_errors_csv(fitted_models, tmp_path):
    import csv
    import predict
    write_jpeg(synthetic_lesion(seed=2)[0], tmp_path / "lesion.jpg")
    write_jpeg(grey_picture(), tmp_path / "xray.jpg")
    out = tmp_path / "out"
    assert predict.main([str(tmp_path / "lesion.jpg"), str(tmp_path / "xray.jpg"), "--out", str(out),
                         "--models", str(fitted_models), "--quiet"]) == 2
    rows = list(csv.DictReader(open(out / "predictions.csv")))
    assert [r["image"] for r in rows] == ["lesion"]
    assert {"ood_score", "unusual_image", "uncertain"} <= set(rows[0])
    assert rows[0]["unusual_image"] in ("0", "1") and float(rows[0]["ood_score"]) >= 0
    errors = list(csv.DictReader(open(out / "errors.csv")))
    assert errors[0]["image"] == "xray" and "not analysed" in errors[0]["error"]


def site_folder(root, melanomas=6, nevi=6):
    for label, count in (("mel", melanomas), ("nv", nevi)):
        (root / label).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            write_jpeg(synthetic_lesion(seed=200 + index + 50 * (label == "nv"))[0], root / label / f"{index}.jpg")
    return root


def test_site_calibration_sets_the_threshold_and_refuses_another_model(fitted_models, tmp_path):
    import predict
    from skinlesion.analysis import Analyzer
    from skinlesion.classify import CalibrationError
    from training import calibrate
    site = calibrate.main([str(site_folder(tmp_path / "site")), "--task", "7class", "--out",
                           str(tmp_path / "site.json"), "--models", str(fitted_models)])
    written = json.loads((tmp_path / "site.json").read_text())
    assert written == json.loads(json.dumps(site))
    assert written["images_per_class"] == {"mel": 6, "nv": 6} and written["melanoma_sensitivity"] >= 0.83
    assert written["model_sha256"] == json.loads((fitted_models / "classifier_7class.json").read_text())["sha256"]
    assert "caution" in written  # 6 melanomas: says the threshold is noisy
    analyzer = Analyzer(fitted_models, tasks=("7class",), calibration=tmp_path / "site.json")
    classifier = analyzer.classifier("7class")
    assert classifier.referral_threshold == written["threshold"]
    assert classifier.referral["site"]["images"] == 12
    other = dict(written, model_sha256="0" * 64)
    (tmp_path / "other.json").write_text(json.dumps(other))
    with pytest.raises(CalibrationError, match="made for another model"):
        Analyzer(fitted_models, tasks=("7class",), calibration=tmp_path / "other.json")
    assert predict.main([str(tmp_path / "site" / "mel"), "--out", str(tmp_path / "o"), "--models",
                         str(fitted_models), "--calibration", str(tmp_path / "other.json"), "--quiet"]) == 1


def test_site_calibration_needs_melanomas(fitted_models, tmp_path):
    from training import calibrate
    with pytest.raises(SystemExit, match="melanomas"):
        calibrate.main([str(site_folder(tmp_path / "site", melanomas=2)), "--task", "7class",
                        "--out", str(tmp_path / "s.json"), "--models", str(fitted_models)])


def test_gunicorn_master_refuses_a_calibration_for_another_model(fitted_models, tmp_path, monkeypatch):
    """Checked before forking (no TensorFlow), so no worker boots with it."""
    import runpy
    from types import SimpleNamespace
    from conftest import ROOT
    card = json.loads((fitted_models / "classifier_7class.json").read_text())
    site = {"task": "7class", "threshold": 0.2, "model_sha256": card["sha256"]}
    (tmp_path / "site.json").write_text(json.dumps(site))
    (tmp_path / "other.json").write_text(json.dumps(dict(site, model_sha256="0" * 64)))
    monkeypatch.setenv("SKINLESION_MODELS_DIR", str(fitted_models))
    monkeypatch.setenv("SKINLESION_TASKS", "7class")
    logged = []
    server = SimpleNamespace(log=SimpleNamespace(error=lambda *args: logged.append(args[0] % args[1:])))
    def on_starting():  # gunicorn reads its configuration, settings included, once at start
        return runpy.run_path(str(ROOT / "gunicorn.conf.py"))["on_starting"](server)
    monkeypatch.setenv("SKINLESION_CALIBRATION", str(tmp_path / "site.json"))
    on_starting()  # the right model: starts
    monkeypatch.setenv("SKINLESION_CALIBRATION", str(tmp_path / "other.json"))
    with pytest.raises(SystemExit):
        on_starting()
    assert "made for another model" in logged[-1]
