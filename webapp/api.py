"""JSON API. Contract (other tools depend on it):

POST /api/analyze  multipart: image, [task, case, note]  -> 200 analysis JSON
GET  /api/analyses/<id>                                   -> the same JSON
GET  /api/health                                          -> models loaded, versions
Any bad request -> 4xx with {"error": "<human message>"}.
"""
from flask import Blueprint, current_app, jsonify, request, url_for

from skinlesion.imageio import ImageError

from .auth import current_user
from .engine import StorageError
from .forms import FormError, read_task, read_uploads

blueprint = Blueprint("api", __name__, url_prefix="/api")


def engine():
    return current_app.extensions["skinlesion"]


def as_json(record):
    def image_url(kind):
        if kind not in record["files"]:
            return None
        return url_for("pages.analysis_image", analysis_id=record["id"], kind=kind, _external=True)

    return {
        "id": record["id"], "created": record["created"], "task": record["task"],
        "prediction": record["prediction"], "probabilities": record["probabilities"],
        "malignant_probability": round(record["malignant_probability"], 6),
        "referral_threshold": record["summary"].get("referral_threshold"),
        "suspicious": bool(record["suspicious"]), "low_confidence": bool(record["low_confidence"]),
        "lesion": record["lesion"], "warnings": record["summary"].get("warnings", []),
        "reliability": reliability_of(record),
        "models": record["models"], "case": record["case_ref"], "note": record["note"],
        "file_name": record["original_name"], "image_sha256": record["image_sha256"],
        "images": {kind: image_url(kind) for kind in ("original", "mask", "contour", "gradcam",
                                                     "saliency", "crop")},
        "report_url": url_for("pages.result", analysis_id=record["id"], _external=True),
    }


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
        record = engine().analyze_upload(uploads[0].data, task, uploads[0].name,
                                         request.form.get("case", ""), request.form.get("note", ""),
                                         current_user())
    except (FormError, ImageError) as problem:
        return error(str(problem), getattr(problem, "status", 400))
    except StorageError as problem:
        return error(str(problem), 503)
    return jsonify(as_json(record))


@blueprint.get("/analyses/<analysis_id>")
def get_analysis(analysis_id):
    record = engine().visible(analysis_id, current_user())
    if record is None:
        return error("No analysis with this id.", 404)
    return jsonify(as_json(record))


@blueprint.get("/health")
def health():
    return jsonify({"status": "ok", "tasks": list(engine().tasks), "models": engine().analyzer.versions()})


@blueprint.errorhandler(413)
def too_large(_error):
    limit = current_app.config["MAX_CONTENT_LENGTH"] // (1024 * 1024)
    return error(f"The upload is too large; the limit is {limit} MB.", 413)


@blueprint.errorhandler(404)
def not_found(_error):
    return error("Not found.", 404)


@blueprint.errorhandler(405)
def not_allowed(_error):
    return error("Method not allowed.", 405)
