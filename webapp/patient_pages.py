"""Patients and their lesions over time: the patient list, a patient's body map and lesions,
a lesion's timeline of visits with its confirmed diagnosis, and deleting a patient."""
import re
from datetime import date

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for

from skinlesion.body_sites import SITES, SIDES, site_words
from skinlesion.classes import DISPLAY_NAMES, TASK_LABELS

from .auth import current_owner, current_user
from .bodymap import regions
from .patients import DIAGNOSES, METHODS

blueprint = Blueprint("patients", __name__)
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def engine():
    return current_app.extensions["skinlesion"]


def patient_or_404(patient_id):
    patient = engine().visible_patient(patient_id, current_owner())
    if patient is None:
        abort(404)
    return patient


def lesion_or_404(lesion_id):
    found = engine().visible_lesion(lesion_id, current_owner())
    if found is None:
        abort(404)
    return found


def mark_of(lesion, number):
    if lesion["map_view"] is None or lesion["map_x"] is None:
        return None
    return {"view": lesion["map_view"], "x": lesion["map_x"], "y": lesion["map_y"], "number": number,
            "label": f"{number}: {lesion['label']} ({site_words(lesion['body_site'], lesion['laterality']) or 'site not given'})"}


@blueprint.app_context_processor
def body_map_names():
    return {"regions_of": regions, "site_words": site_words, "body_sites": SITES, "sides": SIDES,
            "diagnosis_names": DIAGNOSES, "method_names": METHODS}


@blueprint.get("/patients")
def patients():
    search = request.args.get("q", "").strip()[:100]
    return render_template("patients.html", patients=engine().visible_patients(current_owner(), search or None),
                           search=search)


@blueprint.get("/patients/<patient_id>")
def patient(patient_id):
    found = patient_or_404(patient_id)
    lesions = []
    for number, lesion in enumerate(engine().patients.lesions_of(found["id"]), start=1):
        visits = engine().patients.visits(lesion["id"])
        lesions.append({"lesion": lesion, "number": number, "visits": visits, "last": visits[-1] if visits else None,
                        "diagnosis": engine().patients.diagnosis(lesion["id"]), "mark": mark_of(lesion, number)})
    return render_template("patient.html", patient=found, lesions=lesions, names=DISPLAY_NAMES,
                           marks=[item["mark"] for item in lesions if item["mark"]])


@blueprint.post("/patients/<patient_id>/delete")
def delete_patient(patient_id):
    found = patient_or_404(patient_id)
    engine().delete_patient(found)
    flash(f"Deleted patient {found['identifier']}: their lesions, diagnoses, analyses and images.")
    return redirect(url_for("patients.patients"), code=303)


@blueprint.get("/lesions/<lesion_id>")
def lesion(lesion_id, error=None, status=200):
    found, owner_patient = lesion_or_404(lesion_id)
    visits = engine().patients.visits(found["id"])
    mark = mark_of(found, 1)
    return render_template("lesion.html", lesion=found, patient=owner_patient, visits=visits,
                           diagnosis=engine().patients.diagnosis(found["id"]), names=DISPLAY_NAMES,
                           task_labels=TASK_LABELS, marks=[mark] if mark else [], error=error,
                           today=date.today().isoformat(), form=request.form), status


@blueprint.post("/lesions/<lesion_id>/diagnosis")
def record_diagnosis(lesion_id):
    found, _ = lesion_or_404(lesion_id)
    form = {name: request.form.get(name, "").strip() for name in
            ("diagnosis", "detail", "method", "confirmed_on", "recorded_by")}
    recorded_by = form["recorded_by"] or current_user() or ""
    problem = None
    if form["diagnosis"] not in DIAGNOSES:
        problem = "Choose the confirmed diagnosis."
    elif form["diagnosis"] == "other" and not form["detail"]:
        problem = "Say which diagnosis ('other')."
    elif form["method"] not in METHODS:
        problem = "Choose how the diagnosis was confirmed."
    elif not ISO_DATE.fullmatch(form["confirmed_on"]) or not _is_date(form["confirmed_on"]):
        problem = "The date of confirmation is written YYYY-MM-DD."
    elif not recorded_by:
        problem = "Say who records the diagnosis."
    elif len(form["detail"]) > 200 or len(recorded_by) > 100:
        problem = "The detail holds at most 200 characters, the name 100."
    if problem:
        return lesion(lesion_id, error=problem, status=400)
    engine().patients.add_diagnosis(found["id"], form["diagnosis"], form["method"], form["confirmed_on"],
                                    recorded_by, form["detail"])
    flash(f"Recorded the confirmed diagnosis: {DIAGNOSES[form['diagnosis']]}.")
    return redirect(url_for("patients.lesion", lesion_id=found["id"]), code=303)


def _is_date(text):
    try:
        return date.fromisoformat(text) <= date.today()
    except ValueError:
        return False


@blueprint.get("/analyses/<analysis_id>/dicom")
def analysis_dicom(analysis_id):
    """The analysis as DICOM objects of the patient's study, in one ZIP (skinlesion.dicom_export)."""
    import io
    import zipfile

    import numpy as np
    from flask import Response
    from PIL import Image

    from skinlesion.dicom import dicom_facts
    from skinlesion.dicom_export import analysis_objects

    record = engine().visible(analysis_id, current_owner())
    if record is None:
        abort(404)
    found = record.get("lesion_id") and engine().visible_lesion(record["lesion_id"], current_owner())
    patient = found[1] if found else None

    def pixels(kind, mode):
        path = engine().file_path(record, kind)
        return np.asarray(Image.open(path).convert(mode)) if path and path.is_file() else None

    original = pixels("original", "RGB")
    if original is None:
        abort(404)
    mask = pixels("mask", "L")
    upload = engine().file_path(record, "upload")
    facts = dicom_facts(upload.read_bytes()) if upload and upload.is_file() else {}
    overlays = {kind: image for kind in ("contour", "gradcam") if (image := pixels(kind, "RGB")) is not None}
    objects = analysis_objects(record, original, None if mask is None else mask > 127, overlays,
                               patient_id=patient["identifier"] if patient else facts.get("patient_id", ""),
                               study_uid=facts.get("study_uid"))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in objects.items():
            archive.writestr(name, data)
    return Response(buffer.getvalue(), mimetype="application/zip", headers={
        "Content-Disposition": f"attachment; filename=lesion-lens-{record['id'][:8]}-dicom.zip"})
