"""Patients, lesions over visits, confirmed diagnoses, FHIR out and DICOM in and out (issue 31)."""
import io
import json

import pytest

from conftest import synthetic_lesion
from dicom_files import VL_PHOTOGRAPHIC, dermoscopic_dicom
from test_web import jpeg_bytes, page_post, post_api


@pytest.fixture(scope="module")
def app(tiny_models, tmp_path_factory):
    from conftest import build_app
    folder = tmp_path_factory.mktemp("patients")
    return build_app({"workstation": True, "models_dir": tiny_models, "upload_dir": folder / "uploads",
                       "heatmap_dir": folder / "heatmap", "database": folder / "db.sqlite3", "warm_up": False})


@pytest.fixture
def client(app):
    return app.test_client()


def three_visits(client, identifier):
    """A new lesion on the left forearm, then two follow-ups of it."""
    first = post_api(client, jpeg_bytes(seed=1), patient=identifier, lesion="new", site="forearm",
                     laterality="left", map_view="front", map_x="0.72", map_y="0.42").get_json()
    later = [post_api(client, jpeg_bytes(seed=seed), patient=identifier).get_json() for seed in (2, 3)]
    return [first, *later]


def test_three_visits_of_one_lesion_make_its_timeline(client):
    visits = three_visits(client, "P-TIME-1")
    lesion_id = visits[0]["lesion_id"]
    assert lesion_id and all(v["lesion_id"] == lesion_id for v in visits)  # follow-ups of the one lesion
    page = client.get(f"/lesions/{lesion_id}").data.decode()
    assert "Left forearm" in page and page.count('class="compare-pick"') == 3
    assert all(v["id"] in page for v in visits)
    patients = client.get("/patients?q=P-TIME").data.decode()
    assert "P-TIME-1" in patients
    result = client.get(f"/analyses/{visits[1]['id']}").data.decode()
    assert 'id="visit-of"' in result and "Lesion 1: Left forearm" in result


def test_a_second_lesion_needs_new_and_gets_its_own_number(client):
    first = post_api(client, jpeg_bytes(seed=4), patient="P-TWO").get_json()
    second = post_api(client, jpeg_bytes(seed=5), patient="P-TWO", lesion="new", site="back").get_json()
    assert first["lesion_id"] != second["lesion_id"]
    which = post_api(client, jpeg_bytes(seed=6), patient="P-TWO")  # two lesions: the clinician says which
    assert which.status_code == 400 and "has 2 lesions: choose" in which.get_json()["error"]
    named = post_api(client, jpeg_bytes(seed=7), patient="P-TWO", lesion=second["lesion_id"]).get_json()
    assert named["lesion_id"] == second["lesion_id"]
    mixed = post_api(client, jpeg_bytes(seed=8), patient="P-OTHER", lesion=second["lesion_id"])
    assert mixed.status_code == 400 and "patient P-TWO's" in mixed.get_json()["error"]


@pytest.mark.parametrize("fields, message", [
    ({"patient": "P-X", "lesion": "new", "site": "elbow"}, "Unknown body site"),
    ({"patient": "P-X", "lesion": "new", "site": "forearm", "map_view": "front", "map_x": "2", "map_y": "0.5"},
     "between 0 and 1"),
    ({"patient": "P-X", "lesion": "0" * 32}, "does not exist"),
    ({"patient": "P" * 101}, "at most 100"),
])
def test_a_bad_patient_or_lesion_is_a_clear_400(client, fields, message):
    response = post_api(client, jpeg_bytes(), **fields)
    assert response.status_code == 400 and message in response.get_json()["error"]


def test_a_confirmed_diagnosis_shows_beside_the_reading_and_is_checked(client):
    visits = three_visits(client, "P-DX")
    lesion_id = visits[0]["lesion_id"]
    url = f"/lesions/{lesion_id}/diagnosis"
    bad = page_post(client, url, {"diagnosis": "mel", "method": "histopathology", "confirmed_on": "03/12/2026",
                                  "recorded_by": "Dr Rossi"})
    assert bad.status_code == 400 and "YYYY-MM-DD" in bad.data.decode()
    good = page_post(client, url, {"diagnosis": "mel", "method": "histopathology", "confirmed_on": "2026-11-30",
                                   "recorded_by": "Dr Rossi"})
    assert good.status_code == 303
    page = client.get(f"/lesions/{lesion_id}").data.decode()
    assert 'id="confirmed-diagnosis">Melanoma' in page and "Dr Rossi" in page
    result = client.get(f"/analyses/{visits[0]['id']}").data.decode()
    assert 'id="confirmed-beside">Confirmed: Melanoma' in result


def test_the_fhir_bundle_validates_and_carries_the_reading(client):
    from fhir.resources.R4B.bundle import Bundle
    visits = three_visits(client, "P-FHIR")
    response = client.get(f"/api/analyses/{visits[2]['id']}/fhir")
    assert response.status_code == 200 and response.mimetype == "application/fhir+json"
    bundle = Bundle.model_validate_json(response.data)  # fhir.resources validates every resource
    kinds = [entry.resource.get_resource_type() for entry in bundle.entry]
    assert kinds[:2] == ["Patient", "BodyStructure"] and "DiagnosticReport" in kinds and "Media" in kinds
    patient = bundle.entry[0].resource
    assert patient.identifier[0].value == "P-FHIR"
    site = bundle.entry[1].resource
    assert site.location.coding[0].code == "14975008" and site.locationQualifier[0].coding[0].code == "7771000"
    observations = {e.resource.code.text: e.resource for e in bundle.entry if e.resource.get_resource_type() == "Observation"}
    flag = observations["Referral flag (malignant probability at or above the model's threshold)"]
    assert flag.valueBoolean == visits[2]["suspicious"]
    probabilities = [o for name, o in observations.items() if name.startswith("Probability of")]
    assert len(probabilities) == 7 and all(o.valueQuantity.system == "http://unitsofmeasure.org" for o in probabilities)
    assert sum(o.valueQuantity.value for o in probabilities) == pytest.approx(100, abs=0.01)
    timeline = Bundle.model_validate_json(client.get(f"/api/lesions/{visits[0]['lesion_id']}/fhir").data)
    reports = [e.resource for e in timeline.entry if e.resource.get_resource_type() == "DiagnosticReport"]
    assert len(reports) == 3 and "Not a diagnostic device" in reports[0].conclusion


def test_a_dicom_upload_brings_its_patient_site_and_millimetres(client):
    image = synthetic_lesion(300, 400, seed=8)[0]
    data = dermoscopic_dicom(image, patient_id="P-PACS-9", pixel_spacing_mm=0.05)
    body = post_api(client, data, name="lesion.dcm").get_json()
    assert body["lesion_id"], body
    lesion_page = client.get(f"/lesions/{body['lesion_id']}").data.decode()
    assert "Left forearm" in lesion_page and "P-PACS-9" in lesion_page
    measured = body["lesion"]["measurements"]
    assert measured, "the tiny U-Net finds the synthetic lesion"  # 0.05 mm a pixel: 400 px are 20 mm
    assert measured["max_diameter_mm"] == pytest.approx(measured["max_diameter_px"] * 0.05, rel=0.02)
    assert "DICOM" in measured["scale"]["source"]


@pytest.mark.parametrize("make, message", [
    (lambda: dermoscopic_dicom(synthetic_lesion(150, 200)[0], sop_class="1.2.840.10008.5.1.4.1.1.2"), "CT Image"),
    (lambda: dermoscopic_dicom(synthetic_lesion(150, 200)[0])[:400], "DICOM"),
    (lambda: dermoscopic_dicom(synthetic_lesion(20, 20)[0], sop_class=VL_PHOTOGRAPHIC), "too small"),
])
def test_bad_dicom_is_a_clear_4xx(client, make, message):
    response = post_api(client, make(), name="x.dcm")
    assert 400 <= response.status_code < 500 and message in response.get_json()["error"], response.get_json()


def test_deleting_a_patient_removes_their_rows_and_files(client, app):
    visits = three_visits(client, "P-GONE")
    engine = app.extensions["skinlesion"]
    record = engine.visible(visits[0]["id"], None)
    paths = [engine.file_path(record, kind) for kind in record["files"]]
    assert all(p.is_file() for p in paths)
    patient = engine.patients.find_patient("P-GONE", None)
    assert page_post(client, f"/patients/{patient['id']}/delete").status_code == 303
    assert not any(p.exists() for p in paths)
    assert all(engine.visible(v["id"], None) is None for v in visits)
    assert engine.patients.find_patient("P-GONE", None) is None
    assert client.get(f"/lesions/{visits[0]['lesion_id']}").status_code == 404


def test_confirmed_cases_export_for_calibration_and_the_agreement_report(client, app, tmp_path):
    visits = three_visits(client, "P-AGREE")
    page_post(client, f"/lesions/{visits[0]['lesion_id']}/diagnosis",
              {"diagnosis": "nv", "method": "follow-up", "confirmed_on": "2026-11-01", "recorded_by": "Dr Bianchi"})
    runner = app.test_cli_runner()
    result = runner.invoke(args=["export-confirmed", str(tmp_path / "site")])
    assert result.exit_code == 0, result.output
    exported = sorted(p.name for p in (tmp_path / "site" / "nv").iterdir())
    assert exported == sorted(f"{v['id']}.jpg" for v in visits)  # under the folder of the confirmed class
    rows = (tmp_path / "site" / "confirmed.csv").read_text().splitlines()
    assert rows[0].startswith("image,analysis,lesion,dx") and len(rows) >= 4
    report = json.loads(runner.invoke(args=["agreement", "--json"]).output)
    nevi = report["recall_per_confirmed_class"]["nv"]
    agreeing = sum(v["prediction"] == "nv" for v in visits)
    assert (nevi["count"], nevi["of"]) == (agreeing, 3)  # only this patient's lesion was confirmed nv
    low, high = nevi["interval_95"]
    assert 0 <= low <= nevi["share"] <= high <= 1
    text = runner.invoke(args=["agreement"]).output
    assert "recall, confirmed nv" in text and "95% CI" in text


def test_wilson_intervals_are_the_textbook_ones():
    from skinlesion.agreement import wilson
    low, high = wilson(8, 10)  # Wilson 1927 / Newcombe 1998: 0.490 to 0.943
    assert (round(low, 3), round(high, 3)) == (0.490, 0.943)
    assert wilson(0, 0) == (None, None) and wilson(0, 5)[0] == 0.0


def test_the_dicom_export_reads_back_with_the_same_patient_and_study(client):
    import io
    import zipfile

    import pydicom
    image = synthetic_lesion(300, 400, seed=9)[0]
    data = dermoscopic_dicom(image, patient_id="P-PACS-EXPORT", study_uid="1.2.826.0.1.3680043.8.498.1234")
    body = post_api(client, data, name="visit.dcm").get_json()
    response = client.get(f"/analyses/{body['id']}/dicom")
    assert response.status_code == 200 and response.mimetype == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.data))
    datasets = {name: pydicom.dcmread(io.BytesIO(archive.read(name))) for name in archive.namelist()}
    assert {"image.dcm", "outline-seg.dcm", "findings-sr.dcm", "contour-sc.dcm", "gradcam-sc.dcm"} == set(datasets)
    assert {d.PatientID for d in datasets.values()} == {"P-PACS-EXPORT"}
    assert {d.StudyInstanceUID for d in datasets.values()} == {"1.2.826.0.1.3680043.8.498.1234"}
    assert datasets["findings-sr.dcm"].SOPClassUID.name == "Comprehensive SR Storage"
    findings = {item.ConceptNameCodeSequence[0].CodeMeaning: item for item in datasets["findings-sr.dcm"].ContentSequence}
    assert findings["Referral flag"].TextValue == ("raised" if body["suspicious"] else "not raised")
    assert "Not a diagnostic device" in findings["Disclaimer"].TextValue
    seg = datasets["outline-seg.dcm"]  # the outline the tiny U-Net found, on the exported image
    assert seg.SOPClassUID.name == "Segmentation Storage"
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == datasets["image.dcm"].SeriesInstanceUID
    assert seg.pixel_array.shape == datasets["image.dcm"].pixel_array.shape[:2] and seg.pixel_array.any()
    assert client.get("/analyses/nope/dicom").status_code == 404


def test_history_names_each_visits_patient_and_lesion_and_finds_them(client):
    visits = three_visits(client, "P-HIST-5")
    page = client.get("/history?case=HIST-5").data.decode()
    assert all(v["id"] in page for v in visits) and page.count(">P-HIST-5</a> · <a") == 3


def test_a_patient_is_seen_only_by_the_account_that_made_it(tiny_models, tmp_path):
    """Accounts on: bob neither sees nor reaches alice's patient by any page, export or the
    lookup, and a patient identifier of the same text is a patient of his own."""
    from test_security import PASSWORD, basic, login, make_app
    app = make_app(tiny_models, tmp_path, host="0.0.0.0")
    for name in ("alice", "bob"):
        assert app.test_cli_runner().invoke(args=["users", "add", name], input=f"{PASSWORD}\n{PASSWORD}\n").exit_code == 0
    client = app.test_client()
    form = {"image": (io.BytesIO(jpeg_bytes()), "a.jpg"), "patient": "P-SHARED", "lesion": "new",
            "site": "back"}
    alice = client.post("/api/analyze", data=form, headers=basic("alice")).get_json()
    lesion_id = alice["lesion_id"]
    patient_id = app.extensions["skinlesion"].patients.lesion(lesion_id)["patient_id"]
    as_bob = basic("bob")
    for path in (f"/api/lesions/{lesion_id}/fhir", f"/api/analyses/{alice['id']}/fhir"):
        assert client.get(path, headers=as_bob).status_code == 404, path
        assert client.get(path, headers=basic("alice")).status_code == 200, path
    pages = {name: app.test_client() for name in ("alice", "bob")}
    for name, browser in pages.items():
        assert login(browser, name).status_code == 303
    for path in (f"/patients/{patient_id}", f"/lesions/{lesion_id}", f"/analyses/{alice['id']}/dicom"):
        assert pages["bob"].get(path).status_code == 404, path
        assert pages["alice"].get(path).status_code == 200, path
    assert "P-SHARED" not in pages["bob"].get("/patients").data.decode()
    assert "P-SHARED" in pages["alice"].get("/patients").data.decode()
    assert page_post(pages["bob"], f"/patients/{patient_id}/delete").status_code == 404
    assert client.get("/api/patients/lesions?identifier=P-SHARED", headers=as_bob).get_json()["lesions"] == []
    forged = {"image": (io.BytesIO(jpeg_bytes()), "b.jpg"), "patient": "P-SHARED", "lesion": lesion_id}
    refused = client.post("/api/analyze", data=forged, headers=as_bob)
    assert refused.status_code == 400 and "not yours" in refused.get_json()["error"]
    own = {"image": (io.BytesIO(jpeg_bytes()), "c.jpg"), "patient": "P-SHARED"}
    bobs = client.post("/api/analyze", data=own, headers=as_bob).get_json()
    assert bobs["lesion_id"] != lesion_id  # his own patient P-SHARED, with a lesion of its own


from test_postgres import database, postgres_server, postgres_url  # noqa: E402,F401 (fixtures)


def test_the_patient_store_on_both_databases(database):  # noqa: F811
    """Lists with counts, the confirmed visits' join, places, and deleting a patient with
    everything of theirs, on SQLite and PostgreSQL alike."""
    from test_postgres import record
    from webapp import db
    from webapp.patients import PatientStore
    from webapp.store import Store
    engine = db.connect(database)
    store, patients = Store(database, engine), PatientStore(engine)
    first = patients.find_or_add_patient("P-DB", "acct-a")
    assert patients.find_or_add_patient("P-DB", "acct-a")["id"] == first["id"]
    assert patients.find_or_add_patient("P-DB", "acct-b")["id"] != first["id"]
    lesion = patients.add_lesion(first["id"], site="forearm", laterality="left", view="front", x=0.7, y=0.4)
    other = patients.add_lesion(first["id"])
    assert (lesion["label"], other["label"]) == ("Lesion 1", "Lesion 2")
    for index, lesion_id in enumerate([lesion["id"], lesion["id"], other["id"]]):
        store.add(record(f"v{index}", owner="acct-a", created=f"2026-0{index + 1}-01T00:00:00+00:00") | {"lesion_id": lesion_id})
    patients.add_diagnosis(lesion["id"], "nv", "follow-up", "2026-05-01", "Dr A")
    patients.add_diagnosis(lesion["id"], "mel", "histopathology", "2026-06-01", "Dr B")  # the newest holds
    confirmed = patients.confirmed_visits(owner="acct-a")
    assert [(r["id"], c["diagnosis"]) for r, c in confirmed] == [("v0", "mel"), ("v1", "mel")]
    listed = patients.patients(owner="acct-a")
    assert [(p["identifier"], p["lesions"], p["visits"]) for p in listed] == [("P-DB", 2, 3)]
    assert patients.places(["x", lesion["id"]])[lesion["id"]][1]["identifier"] == "P-DB"
    files = patients.delete_patient(first["id"])
    assert sorted(f["upload"] for f in files) == ["v0.upload", "v1.upload", "v2.upload"]
    assert store.get("v0") is None and patients.lesion(lesion["id"]) is None
    assert patients.diagnosis(lesion["id"]) is None and patients.patient(first["id"]) is None
    assert patients.find_patient("P-DB", "acct-b") is not None  # another account's patient stays


def test_the_clinics_confirmed_cases_show_beside_a_new_reading_to_their_owner_only(tiny_models, tmp_path):
    """Issue 32 (b): a confirmed lesion of this clinic is offered as a similar case for another
    lesion's reading; never for its own lesion, never to another account."""
    from test_security import PASSWORD, basic, login, make_app
    app = make_app(tiny_models, tmp_path, host="0.0.0.0")
    for name in ("alice", "bob"):
        assert app.test_cli_runner().invoke(args=["users", "add", name], input=f"{PASSWORD}\n{PASSWORD}\n").exit_code == 0
    client = app.test_client()

    def upload(user, seed, **fields):
        data = {"image": (io.BytesIO(jpeg_bytes(seed=seed)), "a.jpg"), **fields}
        return client.post("/api/analyze", data=data, headers=basic(user)).get_json()

    first = upload("alice", 1, patient="P-C1")
    engine = app.extensions["skinlesion"]
    engine.patients.add_diagnosis(first["lesion_id"], "mel", "histopathology", "2026-11-30", "Dr A")
    second = upload("alice", 2, patient="P-C1")  # the confirmed lesion's next visit
    other = upload("alice", 3, patient="P-C2")
    bobs = upload("bob", 3, patient="P-C9")
    record = engine.store.get(other["id"])
    shown = {case["analysis_id"] for case in engine.clinic_similar(record, record["owner"])}
    assert shown == {first["id"], second["id"]}  # both visits of the confirmed lesion
    own = engine.store.get(second["id"])
    assert engine.clinic_similar(own, own["owner"]) == []  # never its own lesion
    bob_record = engine.store.get(bobs["id"])
    assert engine.clinic_similar(bob_record, bob_record["owner"]) == []  # alice's cases are hers
    pages = {name: app.test_client() for name in ("alice", "bob")}
    for name, browser in pages.items():
        login(browser, name)
    alice_page = pages["alice"].get(f"/analyses/{other['id']}").data.decode()
    assert 'id="clinic-similar"' in alice_page and f"/analyses/{first['id']}" in alice_page
    assert 'id="clinic-similar"' not in pages["bob"].get(f"/analyses/{bobs['id']}").data.decode()
    engine.delete(engine.store.get(first["id"]))  # a deleted analysis takes its features along
    assert engine.patients.features_of(first["id"]) is None
