"""JSON API. Contract (other tools depend on it):

POST /api/analyze  multipart: image, [task, note, patient, lesion (an id or "new"), lesion_label,
                   site, laterality, map_view, map_x, map_y; case: the patient's identifier as before]
                   -> 200 analysis JSON
GET  /api/analyses/<id>                                   -> the same JSON
GET  /api/analyses/<id>/fhir, /api/lesions/<id>/fhir      -> a FHIR R4B Bundle (application/fhir+json)
GET  /api/patients/lesions?identifier=ID                  -> {"patient", "lesions": [{id, label, site}]}
GET  /api/health                 -> 200 {"status": "ok", models} or 503 {"status": "failing", "problems"}
Any bad request -> 4xx with {"error": "<human message>"}.
"""
from flask import Blueprint, current_app, jsonify, request, url_for

from skinlesion.imageio import ImageError
from skinlesion.overlays import IMAGE_KINDS
from skinlesion.verdict import verdict_of

from .auth import current_owner
from .engine import ServiceUnavailable, VisitError
from .forms import FormError, read_case_and_note, read_task, read_visit, read_uploads
from .limits import take_for_request
from .config import settings_of

blueprint = Blueprint("api", __name__, url_prefix="/api")


def engine():
    return current_app.extensions["skinlesion"]


def as_json(record):
    """The stored summary of the analysis (Analysis.summary()), with what the web app adds:
    its id and time, the clinician's fields, and the addresses of its images and page."""
    def image_url(kind):
        if kind not in record["files"]:
            return None
        return absolute_url("pages.analysis_image", analysis_id=record["id"], kind=kind)

    return dict(record["summary"]) | {
        "id": record["id"], "created": record["created"],
        "suspicious": bool(record["suspicious"]), "low_confidence": bool(record["low_confidence"]),
        "warnings": record["summary"].get("warnings", []), "reliability": reliability_of(record),
        "verdict": verdict_of(record["summary"], record["suspicious"]).as_dict(),
        "case": record["case_ref"], "note": record["note"], "lesion_id": record.get("lesion_id"),
        "file_name": record["original_name"], "image_sha256": record["image_sha256"],
        "images": {kind: image_url(kind) for kind in IMAGE_KINDS if kind != "thumb"},
        "report_url": absolute_url("pages.result", analysis_id=record["id"]),
    }


def absolute_url(endpoint, **values):
    """An absolute URL under PUBLIC_URL when configured; else under the request's Host,
    which only ever is one of TRUSTED_HOSTS (a forged Host is refused before this)."""
    base = settings_of(current_app).public_url
    if base:
        return base + url_for(endpoint, **values)
    return url_for(endpoint, **values, _external=True)


def reliability_of(record):
    """The stored reliability state; an analysis stored before it existed has none."""
    stored = record["summary"].get("reliability")
    if stored is None:
        return None
    return {key: stored.get(key) for key in ("state", "ood_score", "unusual_image", "uncertain", "message")}


def error(message, status):
    return jsonify({"error": message}), status


@blueprint.post("/analyze")
def analyze():
    try:
        uploads = read_uploads(request)
        if len(uploads) != 1:
            raise FormError("Send exactly one image in the field 'image'.")
        task = read_task(request, engine().tasks)
        case_ref, note = read_case_and_note(request)
        visit = read_visit(request)
        take_for_request("analyses")
        record = engine().analyze_upload(uploads[0].data, task, uploads[0].name, case_ref, note,
                                         current_owner(), visit)
    except (FormError, ImageError, VisitError) as problem:
        return error(str(problem), getattr(problem, "status", 400))
    except ServiceUnavailable as problem:
        return error(str(problem), 503)
    return jsonify(as_json(record))


@blueprint.get("/analyses/<analysis_id>")
def get_analysis(analysis_id):
    record = engine().visible(analysis_id, current_owner())
    if record is None:
        return error("No analysis with this id.", 404)
    return jsonify(as_json(record))


@blueprint.get("/health")
def health():
    """200 when this worker can analyse and a restarted one could start; else 503 with why.
    Open to a load balancer's probe without credentials (auth.PROBE_ENDPOINT): without
    a login it says only healthy or not and why, not which models run."""
    problems = engine().problems()
    body = {"status": "failing" if problems else "ok", "problems": problems}
    if current_owner() is not None or not settings_of(current_app).login_required:
        body |= {"tasks": list(engine().tasks), "models": engine().versions()}
    return jsonify(body), 503 if problems else 200


@blueprint.get("/patients/lesions")
def patient_lesions():
    """The lesions of the patient with this identifier (for the upload form's list)."""
    from skinlesion.body_sites import site_words
    patient = engine().patients.find_patient(request.args.get("identifier", "").strip()[:100], current_owner())
    lesions = engine().patients.lesions_of(patient["id"]) if patient else []
    return jsonify({"patient": patient["id"] if patient else None, "lesions": [
        {"id": lesion["id"], "label": lesion["label"],
         "site": site_words(lesion["body_site"], lesion["laterality"]) or "site not given"} for lesion in lesions]})


def fhir_response(records, patient=None, lesion=None):
    import mimetypes
    from skinlesion.fhir import bundle

    def image_url(record, kind):
        path = engine().file_path(record, kind)
        if path is None:
            return None
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return absolute_url("pages.analysis_image", analysis_id=record["id"], kind=kind), mime

    made = bundle(records, patient, lesion, image_url)
    return current_app.response_class(made.model_dump_json(exclude_none=True), mimetype="application/fhir+json")


@blueprint.get("/analyses/<analysis_id>/fhir")
def analysis_fhir(analysis_id):
    """The analysis as a FHIR R4B Bundle (skinlesion.fhir)."""
    record = engine().visible(analysis_id, current_owner())
    if record is None:
        return error("No analysis with this id.", 404)
    found = engine().visible_lesion(record["lesion_id"], current_owner()) if record.get("lesion_id") else None
    lesion, patient = found or (None, None)
    return fhir_response([record], patient, lesion)


@blueprint.get("/lesions/<lesion_id>/fhir")
def lesion_fhir(lesion_id):
    """A lesion's timeline, every visit, as one FHIR Bundle."""
    found = engine().visible_lesion(lesion_id, current_owner())
    if found is None:
        return error("No lesion with this id.", 404)
    lesion, patient = found
    return fhir_response(engine().patients.visits(lesion["id"]), patient, lesion)
