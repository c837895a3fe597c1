"""Faults: storage that cannot be written, missing or corrupt models at start."""
import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT
from test_web import jpeg_bytes, post_api


@pytest.fixture
def app(tiny_models, tmp_path):
    from conftest import build_app
    return build_app({"workstation": True, "models_dir": tiny_models, "upload_dir": tmp_path / "u",
                       "heatmap_dir": tmp_path / "h", "database": tmp_path / "db.sqlite3", "warm_up": False})


def test_unwritable_storage_gives_503_and_the_app_stays_up(app, tmp_path):
    client = app.test_client()
    kept = post_api(client, jpeg_bytes()).get_json()["id"]
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    from webapp.files import AnalysisFiles
    engine = app.extensions["skinlesion"]
    engine.files = AnalysisFiles(engine.files.upload_dir, blocker / "heatmap")
    response = post_api(client, jpeg_bytes(1))
    assert response.status_code == 503 and "storage" in response.get_json()["error"]
    page = client.get("/")
    assert page.status_code == 200
    assert client.get(f"/api/analyses/{kept}").status_code == 200  # nothing stored was lost
    assert len(app.extensions["skinlesion"].store.list()) == 1  # no half record
    assert not list((tmp_path / "u").glob("*.upload"))[1:]  # the failed upload was cleaned up


def test_the_stored_upload_is_the_one_sent(app, tmp_path):
    import hashlib
    data = jpeg_bytes(5)
    body = post_api(app.test_client(), data).get_json()
    assert body["image_sha256"] == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "u" / f"{body['id']}.upload").read_bytes() == data


def test_missing_model_file_names_it(tiny_models, tmp_path):
    from skinlesion.models import ModelFileError
    from conftest import build_app
    models = tmp_path / "models"
    shutil.copytree(tiny_models, models)
    (models / "classifier_3class.h5").unlink()
    with pytest.raises(ModelFileError, match="classifier_3class.h5"):
        build_app({"models_dir": models, "database": tmp_path / "db.sqlite3", "upload_dir": tmp_path / "u",
                    "heatmap_dir": tmp_path / "h"})


def test_app_py_exits_with_a_clear_message_on_a_corrupt_model(tiny_models, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(tiny_models, models)
    with open(models / "unet.h5", "r+b") as handle:
        handle.seek(100)
        handle.write(b"corrupted!")
    env = dict(os.environ, SKINLESION_MODELS_DIR=str(models), SKINLESION_DATABASE=str(tmp_path / "db"),
               SKINLESION_UPLOAD_DIR=str(tmp_path / "u"), SKINLESION_HEATMAP_DIR=str(tmp_path / "h"),
               SKINLESION_PORT="1")
    result = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode != 0
    assert "unet.h5" in result.stderr and "does not match its card" in result.stderr
    assert "Traceback" not in result.stderr
