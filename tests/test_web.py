"""Every route and error path of the web app and the JSON API (Flask test client, tiny models)."""
import io

import numpy as np
import pytest
from PIL import Image

from conftest import synthetic_lesion
from webapp.config import settings_of


@pytest.fixture(scope="module")
def app(tiny_models, tmp_path_factory):
    """One app per module: models load once, as in a real worker."""
    from conftest import build_app
    folder = tmp_path_factory.mktemp("web")
    return build_app({"workstation": True, "models_dir": tiny_models, "upload_dir": folder / "uploads",
                       "heatmap_dir": folder / "heatmap", "database": folder / "db.sqlite3",
                       "warm_up": False, "max_upload_mb": 2})


@pytest.fixture
def client(app):
    return app.test_client()


def jpeg_bytes(seed=0, size=(150, 200)):
    buffer = io.BytesIO()
    Image.fromarray(synthetic_lesion(*size, seed=seed)[0]).save(buffer, "JPEG")
    return buffer.getvalue()


def page_post(client, url, data=None, **kwargs):
    """A form POST as the browser sends it: with the session's CSRF token."""
    with client.session_transaction() as session:
        session["csrf_token"] = "test-token"
    data = dict(data or {}, csrf_token="test-token")
    return client.post(url, data=data, content_type="multipart/form-data", **kwargs)


def post_api(client, data=None, name="lesion.jpg", **fields):
    form = dict(fields)
    if data is not None:
        form["image"] = (io.BytesIO(data), name)
    return client.post("/api/analyze", data=form)


def test_api_analyze_contract(client):
    response = post_api(client, jpeg_bytes(), task="3class", case="P-17", note="left shoulder")
    assert response.status_code == 200
    body = response.get_json()
    assert body["task"] == "3class" and body["prediction"] in ("bcc", "mel", "nv")
    assert set(body["probabilities"]) == {"bcc", "mel", "nv"}
    assert sum(body["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert isinstance(body["suspicious"], bool)
    assert {"found", "area_fraction", "measurements"} <= set(body["lesion"])
    for kind in ("original", "mask", "gradcam", "saliency"):
        image = client.get(body["images"][kind])
        assert image.status_code == 200 and image.data, kind
    assert client.get(body["report_url"]).status_code == 200
    again = client.get(f"/api/analyses/{body['id']}").get_json()
    assert again["probabilities"] == body["probabilities"] and again["case"] == "P-17"


def test_mask_image_is_at_upload_size(client):
    body = post_api(client, jpeg_bytes(size=(123, 157))).get_json()
    mask = Image.open(io.BytesIO(client.get(body["images"]["mask"]).data))
    assert mask.size == (157, 123)


@pytest.mark.parametrize("data, name, status, message", [
    (None, None, 400, "No file"),
    (b"", "empty.jpg", 400, "No file|empty"),
    (b"%PDF-1.4 not an image", "x.jpg", 400, "not an image"),
    (b"<html><script>alert(1)</script></html>", "x.svg", 400, "not an image"),
])
def test_api_bad_uploads_are_4xx_json(client, data, name, status, message):
    response = post_api(client, data, name or "x")
    assert response.status_code == status
    assert response.is_json and __import__("re").search(message, response.get_json()["error"])


def test_api_unknown_task(client):
    response = post_api(client, jpeg_bytes(), task="9class")
    assert response.status_code == 400 and "Unknown task" in response.get_json()["error"]


def test_api_too_large_is_413_json(client):
    response = post_api(client, b"\xff" * (3 * 1024 * 1024))
    assert response.status_code == 413 and "too large" in response.get_json()["error"]


def test_api_unknown_analysis_and_route(client):
    assert client.get("/api/analyses/nope").status_code == 404
    assert client.get("/api/analyses/nope").get_json()["error"]
    assert client.get("/api/nothing").get_json() == {"error": "Not found."}


def test_health(client):
    body = client.get("/api/health").get_json()
    assert body["status"] == "ok" and set(body["tasks"]) == {"7class", "3class"}
    assert body["models"]["segmenter"]["sha256"]


def test_upload_page_and_result_page(client):
    page = client.get("/")
    assert page.status_code == 200 and b"Not a diagnostic device" in page.data
    response = page_post(client, "/analyze", {"image": (io.BytesIO(jpeg_bytes()), "a.jpg"),
                                             "task": "7class"})
    assert response.status_code == 303
    result = client.get(response.headers["Location"])
    html = result.data.decode()
    assert result.status_code == 200 and "Not a diagnostic device" in html
    assert "Probabilities" in html and "Melanoma" in html and "Grad-CAM" in html
    # The flag's explanation says what it caught at another clinic (from the card).
    basis = html[html.index('id="referral-basis"'):].split("</p>")[0]
    assert "tiny validation images" in basis and "otherclinic" in basis
    assert "<strong>85%</strong> of melanomas" in basis and "40% of nevi" in basis


def test_upload_page_errors_keep_the_form(client):
    response = page_post(client, "/analyze", {"case": "K-1", "image": (io.BytesIO(b"text"), "a.jpg")})
    html = response.data.decode()
    assert response.status_code == 400 and "not an image" in html
    assert 'id="upload-form"' in html and 'value="K-1"' in html
    assert page_post(client, "/analyze", {}).status_code == 400


def test_page_too_large_is_413_with_form(client):
    response = page_post(client, "/analyze", {"image": (io.BytesIO(b"\0" * (3 * 1024 * 1024)), "big.jpg")})
    assert response.status_code == 413 and b"too large" in response.data and b"upload-form" in response.data


def test_example_images(client, app):
    from webapp.forms import example_names
    with app.test_request_context():
        names = example_names()
    assert names, "static/examples ships example images"
    response = page_post(client, "/analyze", {"example": names[0], "task": "7class"})
    assert response.status_code == 303
    assert page_post(client, "/analyze", {"example": "../app.py"}).status_code == 400


def test_batch_table_and_csv(client):
    response = page_post(client, "/analyze", {
        "image": [(io.BytesIO(jpeg_bytes(1)), "one.jpg"), (io.BytesIO(jpeg_bytes(2)), "two.jpg"),
                  (io.BytesIO(b"junk"), "three.jpg")]})
    # Issue 13.8: post/redirect/get; the batch page has an address of its own.
    assert response.status_code == 303 and response.headers["Location"].startswith("/batches/")
    html = client.get(response.headers["Location"]).data.decode()
    assert "one.jpg" in html and "two.jpg" in html
    assert "three.jpg" in html and "Skipped" in html
    assert html.count('class="reliability state-') == 2  # each row's reliability state
    link = html.split('href="/batch.csv?ids=')[1].split('"')[0]
    csv_text = client.get("/batch.csv?ids=" + link.replace("%2C", ",")).data.decode()
    lines = csv_text.strip().splitlines()
    assert lines[0].startswith("id,file,task,prediction,p_akiec") and len(lines) == 3


def test_history_search_compare_delete(client, app):
    ids = [post_api(client, jpeg_bytes(i), case=case).get_json()["id"]
           for i, case in enumerate(["CASE-A", "CASE-A", "OTHER"])]
    listing = client.get("/history").data.decode()
    assert listing.index(ids[2]) < listing.index(ids[0])  # newest first
    found = client.get("/history?case=CASE-A").data.decode()
    assert ids[0] in found and ids[1] in found and ids[2] not in found
    compare = client.get(f"/compare?a={ids[1]}&b={ids[0]}").data.decode()  # any order: earlier first
    assert compare.index(f"/analyses/{ids[0]}") < compare.index(f"/analyses/{ids[1]}")
    assert "What changed" in compare and "Malignant classes together" in compare and "points" in compare
    assert client.get(f"/compare?a={ids[0]}&b=nope").status_code == 404
    for shown in ids[:2]:  # Issue 13.3: from either visit the link puts the earlier one first
        result = client.get(f"/analyses/{shown}").data.decode()
        assert f"/compare?a={ids[0]}&amp;b={ids[1]}" in result
    files = app.extensions["skinlesion"].store.get(ids[0])["files"]
    deleted = page_post(client, f"/analyses/{ids[0]}/delete")
    assert deleted.status_code == 303
    assert "Deleted the analysis of lesion.jpg" in client.get(deleted.headers["Location"]).data.decode()
    assert client.get(f"/analyses/{ids[0]}").status_code == 404
    assert client.get(f"/api/analyses/{ids[0]}").status_code == 404
    for kind, name in files.items():
        folder = settings_of(app).upload_dir if kind == "upload" else settings_of(app).heatmap_dir
        assert not (folder / name).exists()


@pytest.mark.parametrize("path", ["/analyses/../app.py/original", "/analyses/x/..%2F..%2Fapp.py",
                                  "/analyses/%2e%2e/original", "/static/../app.py"])
def test_no_path_traversal(client, path):
    assert client.get(path).status_code == 404


def test_image_kinds_are_a_fixed_list(client):
    analysis_id = post_api(client, jpeg_bytes()).get_json()["id"]
    assert client.get(f"/analyses/{analysis_id}/upload").status_code == 404
    assert client.get(f"/analyses/{analysis_id}/contour").status_code == 200


def test_orphan_files_are_swept_once_per_start_and_only_when_old(tiny_models, tmp_path):
    """Issue 12.3: a worker starting must not delete the files of an analysis another
    worker is writing; the sweep runs once per server start and spares young files."""
    import os
    import time
    from conftest import build_app
    from webapp import sweep_orphans_at_start
    config = {"models_dir": tiny_models, "upload_dir": tmp_path / "u", "heatmap_dir": tmp_path / "h",
              "database": tmp_path / "db.sqlite3", "warm_up": False, "workstation": True}
    app = build_app(config)
    kept = post_api(app.test_client(), jpeg_bytes()).get_json()["id"]
    in_flight = tmp_path / "u" / "cafebabe.upload"  # another worker is still analysing it
    in_flight.write_bytes(b"x")
    old = [tmp_path / "h" / "deadbeef_gradcam.jpg", tmp_path / "u" / "deadbeef.upload"]
    for path in old:  # left by a crash two hours ago
        path.write_bytes(b"x")
        os.utime(path, (time.time() - 7200,) * 2)
    build_app(config)  # a worker (re)starting sweeps nothing
    assert in_flight.exists() and all(path.exists() for path in old)
    assert sweep_orphans_at_start(settings_of(app)) == 2
    assert in_flight.exists() and not any(path.exists() for path in old)
    assert any(p.name.startswith(kept) for p in (tmp_path / "h").iterdir())
    result = app.test_cli_runner().invoke(args=["sweep"])
    assert result.exit_code == 0 and "Removed 0" in result.output


def odd_but_valid_uploads():
    from PIL import Image as PILImage
    base = PILImage.fromarray(synthetic_lesion(120, 160)[0])

    def encode(image, fmt, **options):
        buffer = io.BytesIO()
        image.save(buffer, fmt, **options)
        return buffer.getvalue()

    exif = PILImage.Exif()
    exif[0x0112] = 6
    sixteen = PILImage.fromarray((np.asarray(base.convert("L"), np.uint16) * 257))
    return {
        "grey.png": encode(base.convert("L"), "PNG"),
        "alpha.png": encode(base.convert("RGBA"), "PNG"),
        "cmyk.tiff": encode(base.convert("CMYK"), "TIFF"),
        "sixteen.png": encode(sixteen, "PNG"),
        "photo.webp": encode(base, "WEBP"),
        "rotated.jpg": encode(base, "JPEG", exif=exif),
        "läsion ünicode €.jpg": encode(base, "JPEG"),
        "../../etc/passwd.jpg": encode(base, "JPEG"),
    }


@pytest.mark.parametrize("name", list(odd_but_valid_uploads()))
def test_odd_but_valid_images_are_analysed(client, app, name):
    data = odd_but_valid_uploads()[name]
    body = post_api(client, data, name=name).get_json()
    assert body["prediction"] and body["file_name"]
    mask = Image.open(io.BytesIO(client.get(body["images"]["mask"]).data))
    assert mask.size == ((120, 160) if name == "rotated.jpg" else (160, 120))
    stored = [p.name for p in settings_of(app).upload_dir.iterdir()]
    assert all(".." not in n and "/" not in n and "passwd" not in n for n in stored)


def sliver_segmentations():
    """What a U-Net can draw that is no proper region: a found mask one pixel thick, and one
    whose outline from the averaged flips vanished (the measured outline is then empty)."""
    from skinlesion.segment import Segmentation
    sliver = np.zeros((150, 200), bool)
    sliver[75, 20:180] = True
    return {"one pixel thick": Segmentation(sliver, True, "", sliver.copy()),
            "outline vanished": Segmentation(sliver, True, "", np.zeros_like(sliver))}


@pytest.mark.parametrize("drawn", list(sliver_segmentations()))
def test_a_sliver_of_a_lesion_is_analysed_and_shown(client, app, monkeypatch, drawn):
    # CI once got a 500 from test_odd_but_valid_images_are_analysed: a random test U-Net drew a
    # sliver whose smoothed outline was empty.
    monkeypatch.setattr(app.extensions["skinlesion"].analyzer, "segment",
                        lambda image: sliver_segmentations()[drawn])
    response = post_api(client, jpeg_bytes())
    assert response.status_code == 200
    body = response.get_json()
    page = client.get(body["report_url"])
    assert page.status_code == 200 and body["id"] in page.data.decode()
    measured = body["lesion"]["measurements"]
    assert (measured is None) == (drawn == "outline vanished")
    assert ("too thin to measure" in page.data.decode()) == (measured is None)
    if measured is None:  # whatever the classifier said, the page does not read "Confident"
        assert body["reliability"]["state"] == "uncertain"
        assert "outline is too thin to measure" in body["reliability"]["message"]


def test_percent_never_reads_zero_or_hundred_when_it_is_not():
    from webapp.pages import percent
    values = (0.0, 0.002, 0.005, 0.012, 0.42, 0.991, 0.996, 1.0)
    assert [percent(p) for p in values] == ["0%", "<1%", "<1%", "1%", "42%", ">99%", ">99%", "100%"]


def test_history_pages_instead_of_a_silent_cap(client, app, monkeypatch):
    import webapp.pages as pages
    monkeypatch.setattr(pages, "HISTORY_PAGE_SIZE", 2)
    ids = [post_api(client, jpeg_bytes(i), case="PAGED").get_json()["id"] for i in range(5)]
    first = client.get("/history?case=PAGED").data.decode()
    last = client.get("/history?case=PAGED&page=3").data.decode()
    assert "5 analyses · page 1 of 3" in first and ids[4] in first and ids[0] not in first
    assert "page 3 of 3" in last and ids[0] in last and 'rel="prev"' in last
    assert "page 3 of 3" in client.get("/history?case=PAGED&page=99").data.decode()  # clamped, not an error


def test_pdf_report_says_what_is_missing_when_it_cannot_be_made(client, monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_weasyprint(name, *args, **kwargs):
        if name == "weasyprint":
            raise OSError("cannot load library 'libpango-1.0-0'")
        return real_import(name, *args, **kwargs)

    analysis_id = post_api(client, jpeg_bytes()).get_json()["id"]
    monkeypatch.setattr(builtins, "__import__", no_weasyprint)
    response = client.get(f"/analyses/{analysis_id}/report.pdf")
    assert response.status_code == 503 and b"libpango" in response.data and b"Print report" in response.data


def test_pdf_report_reads_only_this_analysis_files(tmp_path):
    from webapp.report import _local_file
    (tmp_path / "a_contour.jpg").write_bytes(b"x")
    lookup = lambda analysis, kind: tmp_path / f"a_{kind}.jpg" if analysis == "a" else None  # noqa: E731
    assert _local_file("http://report.invalid/analyses/a/contour", lookup) == tmp_path / "a_contour.jpg"
    assert _local_file("http://report.invalid/static/style.css", lookup).name == "style.css"
    for url in ("http://report.invalid/analyses/b/contour", "http://report.invalid/static/../app.py",
                "file:///etc/passwd", "http://evil.example/x"):
        with pytest.raises(ValueError):
            _local_file(url, lookup)


def test_an_upload_is_decoded_once_per_analysis(app, monkeypatch):
    """Issue 33.3: decode -> pixels, original size and header in one opening (the size and the
    scale were read by opening the bytes twice more)."""
    import PIL.Image
    opened, real_open = [], PIL.Image.open
    monkeypatch.setattr(PIL.Image, "open", lambda *args, **kwargs: opened.append(1) or real_open(*args, **kwargs))
    with app.app_context():
        record = app.extensions["skinlesion"].analyze_upload(jpeg_bytes(size=(300, 400)), "7class")
    assert len(opened) == 1
    assert record["summary"]["original_size"] == {"width": 400, "height": 300}
