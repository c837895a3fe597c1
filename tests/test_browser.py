"""Real-browser tests: Playwright drives Debian's chromium against a live server on a free port.

The server is `python app.py` started by the test, with the shipped models when present
(tiny test models otherwise). A screenshot of the result page is saved to test-artifacts/.
"""
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
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
def server(live):
    return live[0]


@pytest.fixture(scope="module")
def live(tmp_path_factory, tiny_models):
    """(URL, folder) of `python app.py` on a free port; the folder holds its database."""
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
    yield url, folder
    process.terminate()
    process.wait(timeout=30)
    log.close()


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page(browser):
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    yield page
    page.close()


def images_loaded(page):
    return page.eval_on_selector_all("img[src]", "imgs => imgs.map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0])")


def test_upload_through_the_page(server, page):
    example = sorted(EXAMPLES.glob("*.jpg"))[0]
    page.goto(server + "/")
    assert "Not a diagnostic device" in page.inner_text("body")
    page.set_input_files("#image-input", str(example))
    page.fill("input[name=patient]", "BROWSER-1")
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
    page.click("button.example >> nth=0")
    page.wait_for_selector("#verdict", timeout=120_000)
    assert page.locator("td.pct").count() == 7
    page.goto(server + "/")
    page.set_input_files("#image-input", {"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"hello"})
    page.click("#analyse-button")
    page.wait_for_selector(".error")
    assert "not an image" in page.inner_text(".error")
    assert page.locator("#upload-form").count() == 1


# --- issue 13: the result page and the pages around it --------------------------------------

AXE = ROOT / "tests" / "vendor" / "axe-core" / "axe.min.js"
PHONE, DESKTOP = {"width": 390, "height": 844}, {"width": 1366, "height": 900}


def analyse(server, example_index=0, case="", note="", task="7class"):
    """An analysis made through the API; returns its id."""
    import json
    import uuid
    example = sorted(EXAMPLES.glob("*.jpg"))[example_index]
    boundary = uuid.uuid4().hex
    fields = {"task": task, "case": case, "note": note}
    body = b"".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n".encode()
                    for k, v in fields.items())
    body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{example.name}\"\r\n"
             f"Content-Type: image/jpeg\r\n\r\n").encode() + example.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(server + "/api/analyze", data=body,
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())["id"]


@pytest.fixture(scope="module")
def visits(server):
    """Two analyses of one case (a follow-up), and the batch page of two images."""
    first = analyse(server, 0, case="FOLLOW-1", note="first visit")
    second = analyse(server, 1, case="FOLLOW-1", note="second visit")
    return first, second


def test_images_enlarge_with_overlay_controls_and_a_colour_key(server, page, visits):
    page.goto(f"{server}/analyses/{visits[1]}")
    page.wait_for_load_state("networkidle")
    figure = page.locator("figure[data-kind=gradcam]")
    assert "low" in figure.inner_text() and "high contribution" in figure.inner_text()
    assert figure.locator(".ramp-viridis").count() == 1  # a perceptually uniform map, not jet
    layer = figure.locator("img.layer")
    figure.locator(".overlay-opacity").fill("40")
    assert layer.evaluate("e => getComputedStyle(e).opacity") == "0.4"
    figure.locator(".overlay-toggle").uncheck()  # the original alone
    assert layer.evaluate("e => getComputedStyle(e).opacity") == "0"
    page.click("figure[data-kind=contour] button.zoom")
    assert page.evaluate("document.getElementById('viewer').open")
    natural = page.evaluate("document.getElementById('viewer-layer').naturalWidth")
    shown = page.evaluate("document.getElementById('viewer-layer').getBoundingClientRect().width")
    assert shown > 2 * natural  # the full-resolution file, enlarged to the dialog
    page.keyboard.press("Escape")
    assert not page.evaluate("document.getElementById('viewer').open")
    page.click("figure[data-kind=saliency] button.zoom")
    assert page.locator("#viewer-opacity").is_visible()  # explanation images keep their controls
    page.click("#viewer-close")
    # Issue 30.6: enlarged after an overlay, a plain image stands alone (no original behind it).
    page.click("figure[data-kind=crop] button.zoom")
    assert not page.locator("#viewer-base").is_visible()
    assert page.evaluate("getComputedStyle(document.getElementById('viewer-base')).display") == "none"
    page.click("#viewer-close")


def test_examples_use_the_classifier_case_and_note_of_the_form(server, page):
    page.goto(server + "/")
    page.check('input[name=task][value="3class"]')
    page.fill("input[name=patient]", "EXAMPLE-CASE")
    page.fill("textarea[name=note]", "clicked an example")
    page.click("button.example >> nth=0")
    page.wait_for_selector("#verdict", timeout=120_000)
    details = page.inner_text(".details")
    assert "3 classes" in details and "clicked an example" in details
    assert "Patient EXAMPLE-CASE" in page.inner_text("#visit-of")
    assert page.locator("td.pct").count() == 3


def test_batch_has_its_own_address_and_reload_does_not_resubmit(server, page):
    import json
    page.goto(server + "/")
    page.set_input_files("#image-input", [str(p) for p in sorted(EXAMPLES.glob("*.jpg"))[:2]])
    page.click("#analyse-button")
    page.wait_for_url("**/batches/*", timeout=180_000)
    rows = page.locator("#batch-table tbody tr")
    assert rows.count() == 2 and page.locator("#batch-table .reliability").count() == 2
    before = len(json.loads(urllib.request.urlopen(server + "/api/health").read())["tasks"])  # server alive
    count = page.evaluate("fetch('/history').then(r => r.text()).then(t => (t.match(/class=\"compare-pick\"/g) || []).length)")
    page.reload()
    assert page.locator("#batch-table tbody tr").count() == 2 and before
    assert page.evaluate("fetch('/history').then(r => r.text()).then(t => (t.match(/class=\"compare-pick\"/g) || []).length)") == count


def test_history_rows_compare_and_delete(server, page, visits):
    page.goto(server + "/history?case=FOLLOW-1")
    page.wait_for_load_state("networkidle")
    table = page.inner_text("table.history")
    assert "7 classes" in table and "7class" not in table
    # Issue 30.9: one way to write a time everywhere (history, result, compare, report, PDF).
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC", page.inner_text("table.history time >> nth=0"))
    thumbs = page.eval_on_selector_all("img.thumb", "imgs => imgs.map(i => i.complete && i.naturalWidth > 0)")
    assert len(thumbs) == 2 and all(thumbs)
    labels = page.eval_on_selector_all(".compare-pick", "boxes => boxes.map(b => b.getAttribute('aria-label'))")
    assert len(set(labels)) == len(labels)
    assert "page 1 of 1" in page.inner_text(".pager")
    # From the earlier visit, the compare link still puts the earlier visit first.
    page.goto(f"{server}/analyses/{visits[0]}")
    page.click("#same-case a")
    text = page.inner_text("main")
    assert text.index("first visit") < text.index("second visit") and "What changed" in text
    assert "Beyond noise?" in text


def test_delete_asks_then_confirms(server, page):
    doomed = analyse(server, 2, case="DELETE-ME")
    page.goto(f"{server}/analyses/{doomed}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("form.delete-form button")
    page.wait_for_url("**/history")
    assert "Deleted the analysis" in page.inner_text(".confirmation")


@pytest.fixture(scope="module")
def batch_path(server, browser):
    """The page of a batch of two examples, made through the upload form."""
    page = browser.new_page(viewport=DESKTOP)
    page.goto(server + "/")
    page.set_input_files("#image-input", [str(p) for p in sorted(EXAMPLES.glob("*.jpg"))[:2]])
    page.click("#analyse-button")
    page.wait_for_url("**/batches/*", timeout=180_000)
    path = "/" + page.url.split("/", 3)[3]
    page.close()
    return path


@pytest.fixture
def pages_to_check(server, visits, batch_path):
    first, second = visits
    lesion_id = json.loads(urllib.request.urlopen(f"{server}/api/analyses/{second}").read())["lesion_id"]
    with urllib.request.urlopen(f"{server}/lesions/{lesion_id}") as response:
        patient_path = re.search(r'href="(/patients/[0-9a-f]+)"', response.read().decode()).group(1)
    return {"upload": "/", "result": f"/analyses/{second}", "history": "/history",
            "compare": f"/compare?a={first}&b={second}", "batch": batch_path, "not found": "/nowhere",
            "patients": "/patients", "patient": patient_path, "lesion": f"/lesions/{lesion_id}"}


def test_no_page_scrolls_sideways_on_a_phone(server, browser, visits, pages_to_check):
    page = browser.new_page(viewport=PHONE)
    for name, path in pages_to_check.items():
        page.goto(server + path)
        page.wait_for_load_state("networkidle")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], (name, width)
    ARTIFACTS.mkdir(exist_ok=True)
    page.goto(f"{server}/analyses/{visits[1]}")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(ARTIFACTS / "result_phone.png"), full_page=True)
    page.close()


def pdf_pages(data):
    pdfium = pytest.importorskip("pypdfium2")
    return len(pdfium.PdfDocument(data))


def test_the_printed_report_is_one_a4_page_legible_in_black_and_white(server, browser, visits):
    page = browser.new_page(viewport=DESKTOP)
    page.goto(f"{server}/analyses/{visits[1]}")
    page.fill("input[name=patient]", "P-0042")
    page.fill("input[name=clinician]", "Dr Rossi")
    page.emulate_media(media="print")
    # Without background graphics: the referral badge and states must be words in boxes.
    for selector in (".verdict .reliability", ".flag"):
        if page.locator(selector).count():
            style = page.eval_on_selector(selector, "e => [getComputedStyle(e).borderTopStyle, getComputedStyle(e).color]")
            assert style[0] != "none" and style[1] in ("rgb(0, 0, 0)",), (selector, style)
    assert page.eval_on_selector(".legend .key", "e => getComputedStyle(e).borderTopWidth") != "0px"
    pdf = page.pdf(format="A4", print_background=False)
    assert pdf_pages(pdf) == 1
    assert page.locator("input[name=patient]").is_visible()  # the fields print with the report
    page.close()


def test_download_pdf_is_the_same_one_page_report(server, visits):
    pytest.importorskip("weasyprint")
    url = f"{server}/analyses/{visits[1]}/report.pdf?patient=P-0042&clinician=Dr+Rossi&date=2026-11-24"
    with urllib.request.urlopen(url, timeout=120) as response:
        assert response.headers["Content-Type"] == "application/pdf"
        data = response.read()
    assert pdf_pages(data) == 1
    pdfium = pytest.importorskip("pypdfium2")
    text = pdfium.PdfDocument(data)[0].get_textpage().get_text_range()
    assert "P-0042" in text and "Dr Rossi" in text and "Not a diagnostic device" in text


def image_heights_mm(data):
    """The height of each image on the first page of a PDF, in millimetres, top to bottom."""
    pdfium = pytest.importorskip("pypdfium2")
    images = pdfium.PdfDocument(data)[0].get_objects(filter=[pdfium.raw.FPDF_PAGEOBJ_IMAGE], max_depth=5)
    bounds = sorted((image.get_bounds() for image in images), key=lambda b: (-b[3], b[0]))
    return [round((top - bottom) / 72 * 25.4, 1) for _, bottom, _, top in bounds]


def both_reports(url, browser, analysis_id):
    """(the browser's printed page, the downloaded PDF) of one analysis."""
    pytest.importorskip("weasyprint")
    page = browser.new_page(viewport=DESKTOP)
    page.goto(f"{url}/analyses/{analysis_id}")
    page.emulate_media(media="print")
    printed = page.pdf(format="A4")
    page.close()
    with urllib.request.urlopen(f"{url}/analyses/{analysis_id}/report.pdf", timeout=120) as response:
        return printed, response.read()


def restored(folder, analysis_id, change_summary, **fields):
    """A copy of a stored analysis (same image files) whose summary `change_summary` edits."""
    from webapp.store import Store, new_record
    store = Store(folder / "db.sqlite3")
    record = store.get(analysis_id)
    summary = change_summary(json.loads(json.dumps(record["summary"])))
    summary["lesion"] = dict(summary["lesion"], **fields.get("lesion", {}))
    copy = new_record(summary, id=uuid.uuid4().hex, files=record["files"], original_name=record["original_name"],
                      image_sha256=record["image_sha256"], case_ref=fields.get("case_ref"),
                      note=fields.get("note"), owner=None)
    store.add(copy)
    return copy["id"]


def confident_nevus(summary):
    summary.update(suspicious=False, warnings=[], reliability=dict(
        summary.get("reliability") or {}, state="confident", uncertain=False, unusual_image=False, reasons=[]))
    return summary


def unusual_flagged_and_warned(summary):
    summary.update(suspicious=True, warnings=["The image is small: fine structure may be lost.",
                                              "Strong JPEG compression was found."],
                   reliability={"state": "unusual", "ood_score": 9.0, "unusual_image": True, "uncertain": True,
                                "message": "This image is unlike the images the classifier learnt from; "
                                           "its probabilities may not hold.", "reasons": ["far from training"]})
    return summary


def test_the_report_images_fill_the_a4_page(live, browser, visits):
    """Issue 30.9: the original and its outline are the largest things on the printed page
    (they were 21-25 mm tall over an empty fifth of the sheet), and it stays one page."""
    url, folder = live
    analysis_id = restored(folder, visits[1], confident_nevus, lesion={"outline_problems": []})
    for name, data in zip(("printed", "downloaded"), both_reports(url, browser, analysis_id)):
        (ARTIFACTS / f"report_{name}.pdf").write_bytes(data)
        heights = image_heights_mm(data)
        assert pdf_pages(data) == 1, name
        assert len(heights) == 5 and min(heights[:2]) >= 35 and min(heights[2:]) >= 25, (name, heights)


def test_a_wordy_report_still_fits_one_a4_page(live, browser, visits):
    """An unusual, flagged image with warnings, an unreliable outline and a long note: the
    images shrink, the words stay."""
    url, folder = live
    note = "Grew since the last visit according to the patient; itches at night. " * 6
    analysis_id = restored(folder, visits[1], unusual_flagged_and_warned, case_ref="CASE-2026-0042-LEFT-FOREARM",
                           note=note, lesion={"outline_problems": ["the outline covers 74% of the image"]})
    printed, downloaded = both_reports(url, browser, analysis_id)
    (ARTIFACTS / "report_wordy_printed.pdf").write_bytes(printed)
    (ARTIFACTS / "report_wordy_downloaded.pdf").write_bytes(downloaded)
    assert pdf_pages(printed) == 1 and pdf_pages(downloaded) == 1
    assert len(image_heights_mm(printed)) == len(image_heights_mm(downloaded)) == 5
    pdfium = pytest.importorskip("pypdfium2")  # Chromium's PDF text comes out a letter a line
    text = " ".join(pdfium.PdfDocument(downloaded)[0].get_textpage().get_text_range().split())
    assert "no reliable reading" in text and "74% of the image" in text and "itches at night" in text


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_axe_finds_no_accessibility_violations(server, browser, pages_to_check, viewport, scheme):
    """axe-core (vendored under tests/vendor, MPL-2.0) on every page; bypass_csp only lets
    the test inject axe's script, the pages are served as always."""
    context = browser.new_context(viewport=viewport, color_scheme=scheme, bypass_csp=True)
    page = context.new_page()
    found = {}
    for name, path in pages_to_check.items():
        page.goto(server + path)
        page.wait_for_load_state("networkidle")
        page.add_script_tag(path=str(AXE))
        result = page.evaluate("axe.run(document).then(r => [r.passes.length, r.violations"
                               ".map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', '))])")
        passes, violations = result
        assert passes > 10, name  # axe did run its rules
        if violations:
            found[name] = violations
    context.close()
    assert not found


def test_the_verdict_leads_with_the_flag_on_desktop_and_phone(live, browser, tmp_path):
    """Issue 30.1: a flagged analysis whose most probable class is benign reads
    "Suspicious: Melanoma .." first, never "Confident" beside a benign headline."""
    from test_verdict import stored_in, summary
    from webapp.store import Store
    url, folder = live
    analysis_id = stored_in(Store(folder / "db.sqlite3"), summary("7class", "bkl", "mel", 0.04, True, "confident"))
    for name, viewport in (("desktop", {"width": 1366, "height": 900}), ("phone", {"width": 390, "height": 844})):
        page = browser.new_page(viewport=viewport)
        page.goto(f"{url}/analyses/{analysis_id}")
        headline = page.inner_text("#verdict-headline")
        assert headline.startswith("Suspicious: Melanoma") and "Uncertain" in headline
        assert "Confident" not in page.inner_text("#verdict")
        page.screenshot(path=str(tmp_path / f"verdict_{name}.png"))
        page.close()


def test_the_images_are_the_largest_thing_on_a_desktop_page(server, browser, visits):
    """Issue 30.7: five images in rows of two and three, none alone beside empty slots."""
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    page.goto(f"{server}/analyses/{visits[1]}")
    boxes = page.eval_on_selector_all(".images > figure", "fs => fs.map(f => f.getBoundingClientRect().toJSON())")
    cards = page.eval_on_selector_all(".result-grid > .card", "cs => cs.map(c => c.getBoundingClientRect().toJSON())")
    assert len(boxes) == 5
    rows = sorted({round(b["top"]) for b in boxes})
    assert len(rows) == 2 and [sum(round(b["top"]) == r for b in boxes) for r in rows] == [2, 3]
    assert min(b["width"] for b in boxes) >= 280 and boxes[0]["width"] >= 420
    assert boxes[0]["width"] * boxes[0]["height"] > max(c["width"] * c["height"] for c in cards) * 0.5
    assert boxes[0]["top"] < cards[0]["top"]  # before the probabilities
    page.close()


def test_a_phone_shows_the_verdict_and_an_image_on_its_first_screen(server, browser, visits):
    """Issue 30.8: the referral explanation folds behind "more"; the first image is in view."""
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(f"{server}/analyses/{visits[1]}")
    first_image = page.locator(".images > figure img.result-image").first.bounding_box()
    assert page.locator("#verdict h1").bounding_box()["y"] < 300
    assert first_image["y"] + first_image["height"] / 2 < 844
    assert not page.evaluate("document.getElementById('referral-basis') === null "
                             "|| document.getElementById('referral-basis').open")
    page.close()


def test_the_upload_box_has_one_way_to_choose_files(server, browser):
    """Issue 30.10: no browser "Choose files" button beside the box's own words; the hidden
    input still takes the keyboard focus and files."""
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    page.goto(server + "/")
    box = page.locator("#image-input").bounding_box()
    assert box["width"] <= 1 and box["height"] <= 1
    page.focus("#image-input")
    assert page.evaluate("document.activeElement.id") == "image-input"
    outline = page.eval_on_selector("#dropzone", "z => getComputedStyle(z).outlineStyle")
    assert outline != "none"  # the zone shows where the focus is
    page.close()


def test_the_report_writes_its_date_as_the_pages_do_and_prints_no_focus_ring(server, browser, visits):
    """Issue 30.9: the report's date is YYYY-MM-DD (a text field, no calendar icon on paper),
    the PDF carries the same, and the print stylesheet hides the focus ring."""
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    page.goto(f"{server}/analyses/{visits[1]}")
    field = page.locator(".report-fields input[name=date]")
    assert field.get_attribute("type") == "text"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", field.input_value())
    page.emulate_media(media="print")
    field.focus()
    assert field.evaluate("e => getComputedStyle(e).outlineStyle") == "none"
    page.close()


def test_states_outlines_and_units_in_every_place_on_desktop_and_phone(live, browser):
    """Issue 30.2-30.5 in Chromium: the 3-class page names its own malignant classes; history
    and compare show each result's state, and no diagnosis for "no reliable reading"; an
    unreliable outline is said; sizes in mm only with a scale."""
    from skinlesion.scale import in_millimetres
    from test_verdict import stored_in, summary
    from webapp.store import Store
    url, folder = live
    store = Store(folder / "db.sqlite3")
    measured = {"area_px": 1000, "max_diameter_px": 40.0, "asymmetry": 0.1, "border_irregularity": 1.3,
                "colour_count": 2, "area_fraction": 0.2, "colours": []}
    three = summary("3class", "nv", "mel", 0.3, False, "confident")
    three["lesion"] = {"found": True, "message": "", "area_fraction": 0.7, "measurements":
                       in_millimetres(measured, {"mm_per_px": 0.05, "source": "a test scale"}, 1000, 1000),
                       "outline_problems": ["the outline covers 72% of the image"]}
    unusual = summary("7class", "nv", "bkl", 0.3, False, "unusual")
    first, second = stored_in(store, three), stored_in(store, unusual)
    for viewport in ({"width": 1366, "height": 900}, {"width": 390, "height": 844}):
        page = browser.new_page(viewport=viewport)
        page.goto(f"{url}/analyses/{first}")
        text = page.inner_text("main")
        assert "Malignant classes together (bcc, mel)" in text and "akiec" not in text
        assert "outline and its measurements are unreliable" in text and "2.0 mm" in text
        page.goto(f"{url}/history?case=V-1")
        row = page.locator(f"tr:has(a[href='/analyses/{second}'])")
        assert "Unusual image: no reliable reading" in row.inner_text() and "nevus" not in row.inner_text()
        assert row.locator(".reliability").count() == 1
        page.goto(f"{url}/compare?a={first}&b={second}")
        assert page.locator(".compare-verdict .reliability").count() == 2
        page.close()


def test_a_clinician_follows_one_lesion_over_three_visits(server, browser):
    """Issue 31: a new patient's lesion marked on the body map, two follow-ups from its page,
    the timeline of three visits, a compare of two of them, and the confirmed diagnosis
    beside the reading; on a desktop and on a phone (screenshots in test-artifacts/)."""
    examples = sorted(EXAMPLES.glob("*.jpg"))
    page = browser.new_page(viewport=DESKTOP)
    page.goto(server + "/")
    page.fill("input[name=patient]", "P-BROWSER-31")
    page.select_option("select[name=lesion]", "new")
    page.click("summary:has-text('Mark it on the body map')")
    page.click("svg[data-view=back] rect[data-site=back]")
    assert page.input_value("select[name=site]") == "back" and page.input_value("input[name=map_view]") == "back"
    page.set_input_files("input[type=file]", str(examples[0]))
    page.click("#analyse-button")
    page.wait_for_url("**/analyses/*", timeout=120000)
    page.click("#visit-of a:nth-of-type(2)")  # the lesion's page
    for example in examples[1:3]:
        page.click("#add-visit")
        assert page.input_value("input[name=patient]") == "P-BROWSER-31"
        page.set_input_files("input[type=file]", str(example))
        page.click("#analyse-button")
        page.wait_for_url("**/analyses/*", timeout=120000)
        page.click("#visit-of a:nth-of-type(2)")
    assert page.locator("#timeline tbody tr").count() == 3
    assert page.inner_text("#lesion-heading") == "Lesion 1: Back"
    page.click("summary:has-text('Record the confirmed diagnosis')")
    page.select_option("select[name=diagnosis]", "nv")
    page.select_option("select[name=method]", "follow-up")
    page.fill("input[name=recorded_by]", "Dr Rossi")
    page.click(".diagnosis-form button[type=submit]")
    assert page.inner_text("#confirmed-diagnosis") == "Melanocytic nevus"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "lesion_desktop.png"), full_page=True)
    page.click("#compare-button")  # the two newest visits, preselected
    assert "What changed" in page.inner_text("main")
    page.go_back()
    page.click("#timeline tbody tr:first-child td[data-label=Reading] a")
    assert page.inner_text("#confirmed-beside").startswith("Confirmed: Melanocytic nevus")
    phone = browser.new_page(viewport=PHONE)
    phone.goto(page.url)
    phone.click("#visit-of a:nth-of-type(2)")
    phone.wait_for_load_state("networkidle")
    wide = phone.evaluate("""() => [...document.querySelectorAll('main *')].filter(e => e.getBoundingClientRect().right > 392)
        .slice(0, 5).map(e => e.tagName + '.' + e.className + ': ' + e.textContent.slice(0, 60))""")
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], wide
    phone.screenshot(path=str(ARTIFACTS / "lesion_phone.png"), full_page=True)
    phone.click("#visit-of a, a:has-text('Patient P-BROWSER-31')")
    assert phone.locator("#lesions tbody tr").count() == 1
    assert phone.locator("svg[data-view=back] .mark").count() == 1
    page.close()
    phone.close()
