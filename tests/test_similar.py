"""Similar confirmed cases (issue 32): nearest gallery lesions, never the query itself."""
import json
import shutil

import numpy as np
import pytest

from conftest import synthetic_lesion
from skinlesion.similar import Gallery, GalleryError, majority


def write_gallery(path, features, cases, model_sha256):
    from skinlesion.similar import normalised
    stored = normalised(np.asarray(features, np.float64)).astype(np.float16)
    np.savez_compressed(path, features=stored, cases=np.array(json.dumps(cases)))
    path.with_suffix(".json").write_text(json.dumps({"model_sha256": model_sha256, "cases": len(cases)}))


def case(index, dx, lesion=None):
    return {"image_id": f"G_{index}", "lesion_id": lesion or f"L_{index}", "dx": dx, "source": "ham10000",
            "attribution": "HAM10000", "licence": "CC BY-NC 4.0", "thumb": f"G_{index}.jpg"}


def test_nearest_first_never_the_query_itself_nor_its_lesion(tmp_path):
    rng = np.random.default_rng(0)
    features = rng.normal(size=(6, 16))
    path = tmp_path / "gallery_7class.npz"
    write_gallery(path, features, [case(i, dx) for i, dx in enumerate(["nv", "nv", "mel", "bkl", "nv", "mel"])], "abc")
    gallery = Gallery.load(path, "abc")
    query = features[2] + 0.3 * rng.normal(size=16)
    found = gallery.nearest(query, k=3)
    assert found[0]["image_id"] == "G_2" and found[0]["similarity"] >= found[1]["similarity"] >= found[2]["similarity"]
    assert "G_2" not in [c["image_id"] for c in gallery.nearest(features[2] * 3.0, k=6)]  # its own image
    assert "G_2" not in [c["image_id"] for c in gallery.nearest(query, k=6, exclude_lesions={"L_2"})]


def test_a_gallery_of_another_model_is_refused_and_an_empty_one_shows_nothing(tmp_path):
    path = tmp_path / "gallery_7class.npz"
    write_gallery(path, np.zeros((0, 16)), [], "abc")
    assert Gallery.load(path, "abc").nearest(np.ones(16)) == []
    with pytest.raises(GalleryError, match="another model"):
        Gallery.load(path, "def")


def test_the_majority_breaks_ties_by_the_nearer_case():
    assert majority([{"dx": "mel"}, {"dx": "nv"}, {"dx": "nv"}, {"dx": "mel"}]) == "mel"
    assert majority([{"dx": "nv"}, {"dx": "mel"}, {"dx": "mel"}]) == "mel"
    assert majority([]) is None


def test_the_result_page_shows_the_neighbours_and_the_api_carries_them(tiny_models, tmp_path):
    """With a gallery beside the tiny classifier: eight cases on the page with their diagnosis
    and attribution, none of them the uploaded image, and the same ids in the API."""
    import io

    from PIL import Image

    from skinlesion.analysis import Analyzer
    from conftest import build_app
    models = tmp_path / "models"
    shutil.copytree(tiny_models, models)
    analyzer = Analyzer(models, tasks=("7class",))
    image = synthetic_lesion(150, 200, seed=3)[0]
    classifier = analyzer.classifier("7class")
    crop = classifier.input_for(classifier.prepare(image), analyzer.segment(image).mask)
    own = classifier.outputs(crop[None], None)[1][0]
    rng = np.random.default_rng(1)
    features = np.vstack([own, own[None] + rng.normal(scale=0.05, size=(10, own.size)) * np.abs(own).mean()])
    dxs = ["nv"] * 6 + ["mel"] * 5
    write_gallery(models / "gallery_7class.npz", features, [case(i, dx) for i, dx in enumerate(dxs)],
                  classifier.card["sha256"])
    app = build_app({"workstation": True, "models_dir": models, "upload_dir": tmp_path / "u",
                      "heatmap_dir": tmp_path / "h", "database": tmp_path / "db.sqlite3", "warm_up": False,
                      "tasks": ["7class"]})
    client = app.test_client()
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "PNG")
    body = client.post("/api/analyze", data={"image": (io.BytesIO(buffer.getvalue()), "a.png")}).get_json()
    shown = [c["image_id"] for c in body["similar"]]
    assert len(shown) == 8 and "G_0" not in shown  # G_0 is the upload's own crop
    page = client.get(f"/analyses/{body['id']}").data.decode()
    assert page.count('class="similar-case"') == 8 and "CC BY-NC 4.0" in page and "Similar confirmed cases" in page
    csv_text = client.get(f"/batch.csv?ids={body['id']}").data.decode()
    assert f"{shown[0]}:" in csv_text.splitlines()[1]  # the CSV export names them too
    from fhir.resources.R4B.bundle import Bundle
    bundle = Bundle.model_validate_json(client.get(f"/api/analyses/{body['id']}/fhir").data)
    texts = [e.resource.valueString for e in bundle.entry if e.resource.get_resource_type() == "Observation"
             and e.resource.valueString]
    assert texts and texts[0].startswith(shown[0])


def test_the_gallery_takes_one_image_per_lesion_and_only_known_licences():
    from pathlib import Path

    from training.datasets import Sample
    from training.build_gallery import choose_cases
    samples = [Sample(Path(f"ISIC_{i}.jpg"), "nv", group, source=source)
               for i, (group, source) in enumerate([("L1", "ham10000"), ("L1", "ham10000"), ("L2", "ham10000"),
                                                    ("A1", "isic_acral"), ("A2", "isic_acral"), ("S1", "isic2017")])]
    licences = {"isic_acral": {"ISIC_3": ("Imperial College London", "CC-BY")}}
    chosen = choose_cases(samples, ("nv",), 10, licences)
    assert sorted(s.group for s, *_ in chosen) == ["A1", "L1", "L2"]  # no A2 (no licence), no ISIC 2017
    assert [licence for s, _, licence in chosen if s.group == "A1"] == ["CC-BY"]


def test_the_shipped_gallery_holds_no_validation_lesion_and_fits_its_budget():
    """Held-out lesions (each source's validation split) can never retrieve themselves."""
    from pathlib import Path

    from conftest import ROOT
    from training.datasets import split_sources
    shared = ROOT.parent / "shared" / "data"
    path = ROOT / "models" / "gallery_7class.npz"
    if not path.is_file() or not shared.is_dir():
        pytest.skip("needs the shipped gallery and ../shared")
    card = json.loads((ROOT / "models" / "classifier_7class.json").read_text())
    gallery = Gallery.load(path, card["sha256"])
    folders = [shared / "ham10000", shared / "isic_acral"]
    classes = tuple(c["code"] for c in card["classes"])
    _, val = split_sources(folders, classes, card["split"]["val_fraction"], card["split"]["seed"])
    assert not {c["lesion_id"] for c in gallery.cases} & {s.group for s in val}
    assert not {c["image_id"] for c in gallery.cases} & {Path(s.image).stem for s in val}
    assert all((ROOT / "static" / "gallery" / c["thumb"]).is_file() for c in gallery.cases)
    shipped = sum(p.stat().st_size for p in (ROOT / "static" / "gallery").glob("*.jpg"))
    shipped += sum(p.stat().st_size for p in (ROOT / "models").glob("gallery_*.npz"))
    assert shipped < 15 * 2**20  # every task's gallery and the thumbnails they share
