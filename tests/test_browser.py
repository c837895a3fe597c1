"""Real-browser tests: Playwright drives Debian's chromium against a live server on a free port.

The server is `python app.py` started by the test, with the shipped models when present
(tiny test models otherwise). A screenshot of the result page is saved to test-artifacts/.
"""
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import EXAMPLES, MODELS, ROOT, shipped_models_present

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_models):
    folder = tmp_path_factory.mktemp("live")
    port = free_port()
    env = dict(os.environ, SKINLESION_PORT=str(port), SKINLESION_UPLOAD_DIR=str(folder / "uploads"),
               SKINLESION_HEATMAP_DIR=str(folder / "heatmap"), SKINLESION_DATABASE=str(folder / "db.sqlite3"),
               SKINLESION_MODELS_DIR=str(MODELS if shipped_models_present() else tiny_models))
    log = open(folder / "server.log", "w")
    process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError((folder / "server.log").read_text())
        try:
            urllib.request.urlopen(url + "/api/health", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        process.kill()
        raise RuntimeError("server did not start: " + (folder / "server.log").read_text())
    yield url
    process.terminate()
    process.wait(timeout=30)
    log.close()


@pytest.fixture(scope="module")
def page():
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        yield page
        browser.close()


def images_loaded(page):
    return page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0])")


def test_upload_through_the_page(server, page):
    example = sorted(EXAMPLES.glob("*.jpg"))[0]
    page.goto(server + "/")
    assert "Not a diagnostic device" in page.inner_text("body")
    page.set_input_files("#image-input", str(example))
    page.fill("input[name=case]", "BROWSER-1")
    page.check('input[name=task][value="7class"]')
    page.click("#analyse-button")
    page.wait_for_selector("#verdict", timeout=120_000)
    percentages = [float(t.strip("%")) for t in page.locator("td.pct").all_inner_texts()]
    assert len(percentages) == 7 and abs(sum(percentages) - 100) < 1.0
    assert percentages == sorted(percentages, reverse=True)
    page.wait_for_load_state("networkidle")
    loaded = images_loaded(page)
    assert len(loaded) >= 5 and all(ok for _, ok in loaded), loaded
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "result_page.png"), full_page=True)
    page.click("text=History")
    assert "BROWSER-1" in page.inner_text("table.history")


def test_example_click_and_error_message(server, page):
    page.goto(server + "/")
    page.click(".example-form button >> nth=0")
    page.wait_for_selector("#verdict", timeout=120_000)
    assert page.locator("td.pct").count() == 7
    page.goto(server + "/")
    page.set_input_files("#image-input", {"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"hello"})
    page.click("#analyse-button")
    page.wait_for_selector(".error")
    assert "not an image" in page.inner_text(".error")
    assert page.locator("#upload-form").count() == 1
