"""Server-rendered pages: upload, result, history, compare, batch, delete, images."""
import io
from datetime import date

from flask import (Blueprint, Response, abort, current_app, flash, redirect, render_template, request,
                   send_file, url_for)

from skinlesion.classes import DISPLAY_NAMES, TASK_LABELS, in_class_order
from skinlesion.export import SpreadsheetWriter, summary_columns, summary_values
from skinlesion.imageio import ImageError
from skinlesion.measure import compare_measurements
from skinlesion.overlays import IMAGE_KINDS
from skinlesion.reliability import STATE_LABELS
from skinlesion.verdict import verdict_of

from .auth import current_owner
from .engine import ServiceUnavailable, VisitError
from .forms import (MAX_CASE_CHARS, MAX_NOTE_CHARS, FormError, example_names, read_case_and_note, read_task, read_visit,
                    read_uploads)
from .limits import take_for_request

blueprint = Blueprint("pages", __name__)
HISTORY_PAGE_SIZE = 50


def engine():
    return current_app.extensions["skinlesion"]


def record_or_404(analysis_id):
    record = engine().visible(analysis_id, current_owner())
    if record is None:
        abort(404)
    return record


def upload_page(error=None, status=200, form=None):
    form = form or {key: request.args.get(key, "")[:100] for key in ("patient", "lesion")}
    patient = form.get("patient") and engine().patients.find_patient(form["patient"], current_owner())
    patient_lesions = engine().patients.lesions_of(patient["id"]) if patient else []
    return render_template("index.html", error=error, form=form, tasks=engine().tasks, patient_lesions=patient_lesions,
                           task_labels=TASK_LABELS, examples=example_names(),
                           limits={"case": MAX_CASE_CHARS, "note": MAX_NOTE_CHARS}), status


@blueprint.get("/")
def index():
    return upload_page()


@blueprint.post("/analyze")
def analyze():
    form = {key: request.form.get(key, "") for key in ("task", "case", "note", "patient", "lesion", "lesion_label",
                                                        "site", "laterality", "map_view", "map_x", "map_y")}
    try:
        uploads = read_uploads(request)
        task = read_task(request, engine().tasks)
        case_ref, note = read_case_and_note(request)
        visit = read_visit(request)
        take_for_request("analyses", len(uploads))
    except FormError as problem:
        return upload_page(str(problem), problem.status, form)
    records, failures = [], []
    for upload in uploads:
        try:
            records.append(engine().analyze_upload(upload.data, task, upload.name, case_ref, note,
                                                   current_owner(), visit))
        except VisitError as problem:
            return upload_page(str(problem), 400, form)
        except ImageError as problem:
            failures.append({"name": upload.name, "error": str(problem),
                             "status": getattr(problem, "status", 400)})
        except ServiceUnavailable as problem:
            return upload_page(str(problem), 503, form)
    if len(uploads) == 1:
        if failures:
            return upload_page(f"{failures[0]['name']}: {failures[0]['error']}",
                               failures[0]["status"], form)
        return redirect(url_for("pages.result", analysis_id=records[0]["id"]), code=303)
    if not records:
        return upload_page("None of the files could be analysed: "
                           + "; ".join(f"{f['name']}: {f['error']}" for f in failures), 400, form)
    batch_id = engine().add_batch(records, failures, current_owner())
    return redirect(url_for("pages.batch", batch_id=batch_id), code=303)


@blueprint.get("/batches/<batch_id>")
def batch(batch_id):
    found = engine().visible_batch(batch_id, current_owner())
    if found is None:
        abort(404)
    stored, records = found
    return render_template("batch.html", batch=stored, records=records, failures=stored["failures"],
                           ids=",".join(r["id"] for r in records), task_labels=TASK_LABELS)


REPORT_FIELDS = ("patient", "clinician", "date")


def render_result(record, pdf=False, small_images=False):
    """small_images: print the images smaller so that a wordy report stays one A4 page."""
    report = {name: request.args.get(name, "").strip()[:100] for name in REPORT_FIELDS}
    report["date"] = report["date"] or date.today().isoformat()  # the day it is printed
    found = record.get("lesion_id") and engine().visible_lesion(record["lesion_id"], current_owner())
    lesion, patient = found or (None, None)
    if patient and not report["patient"]:
        report["patient"] = patient["identifier"]
    return render_template("result.html", r=record, names=DISPLAY_NAMES, task_labels=TASK_LABELS,
                           same_case=[] if pdf else _same_case(record, lesion), report=report, pdf=pdf,
                           lesion=lesion, patient=patient,
                           confirmed=engine().patients.diagnosis(lesion["id"]) if lesion else None,
                           clinic_similar=[] if pdf else engine().clinic_similar(record, current_owner()),
                           small_images=small_images)


@blueprint.get("/analyses/<analysis_id>")
def result(analysis_id):
    return render_result(record_or_404(analysis_id))


@blueprint.get("/analyses/<analysis_id>/report.pdf")
def report_pdf(analysis_id):
    """The printed report as a PDF: the same page, laid out by its print stylesheet."""
    from .report import ReportUnavailable, html_to_pdf
    record = record_or_404(analysis_id)
    take_for_request("reports")
    try:
        data = html_to_pdf(lambda small_images: render_result(record, pdf=True, small_images=small_images),
                           lambda shown, kind: engine().file_path(record, kind) if shown == record["id"] else None)
    except ReportUnavailable as problem:
        return render_template("error.html", title="PDF unavailable", message=str(problem)), 503
    return Response(data, mimetype="application/pdf", headers={
        "Content-Disposition": f"attachment; filename=lesion-lens-{record['id'][:8]}.pdf"})


def _same_case(record, lesion=None):
    """Other visits of this lesion (or, for analyses stored without one, of this case), each
    with the compare link in time order (earlier first)."""
    if lesion:
        others = [r for r in engine().patients.visits(lesion["id"]) if r["id"] != record["id"]]
    elif record["case_ref"]:
        others = [r for r in engine().visible_list(current_owner(), case_ref=record["case_ref"])
                  if r["id"] != record["id"] and r["case_ref"] == record["case_ref"]]
    else:
        return []
    return [{"record": other, "earlier": other["created"] <= record["created"],
             "url": url_for("pages.compare", **_in_time_order(other, record))} for other in others]


def _in_time_order(first, second):
    earlier, later = sorted((first, second), key=lambda r: r["created"])
    return {"a": earlier["id"], "b": later["id"]}


@blueprint.get("/analyses/<analysis_id>/<kind>")
def analysis_image(analysis_id, kind):
    if kind not in IMAGE_KINDS:
        abort(404)
    record = record_or_404(analysis_id)
    path = engine().file_path(record, kind)
    if path is None or not path.is_file():
        abort(404)
    response = send_file(path, max_age=3600)
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response


@blueprint.post("/analyses/<analysis_id>/delete")
def delete(analysis_id):
    record = record_or_404(analysis_id)
    engine().delete(record)
    flash(f"Deleted the analysis of {record['original_name'] or 'an image'} "
          f"from {record['created'][:16].replace('T', ' ')} UTC.")
    return redirect(url_for("pages.history"), code=303)


@blueprint.get("/history")
def history():
    case = request.args.get("case", "").strip()
    total = engine().visible_count(current_owner(), case or None)
    pages = max(1, -(-total // HISTORY_PAGE_SIZE))
    page = min(max(1, request.args.get("page", 1, type=int) or 1), pages)
    records = engine().visible_list(current_owner(), case or None, limit=HISTORY_PAGE_SIZE,
                                    offset=(page - 1) * HISTORY_PAGE_SIZE)
    places = engine().patients.places(r.get("lesion_id") for r in records)
    return render_template("history.html", records=records, case=case, names=DISPLAY_NAMES, places=places,
                           task_labels=TASK_LABELS, page=page, pages=pages, total=total)


@blueprint.get("/compare")
def compare():
    first, second = record_or_404(request.args.get("a", "")), record_or_404(request.args.get("b", ""))
    earlier, later = sorted((first, second), key=lambda r: r["created"])
    noise = engine().measurement_noise() or {}
    changes = compare_measurements(earlier["lesion"], later["lesion"], noise.get("visit_noise"))
    return render_template("compare.html", pair=[earlier, later], names=DISPLAY_NAMES,
                           task_labels=TASK_LABELS, changes=changes,
                           noise_basis=sum((noise.get("images") or {}).values()),
                           malignant_change=later["malignant_probability"] - earlier["malignant_probability"])


@blueprint.get("/batch.csv")
def batch_csv():
    ids = [i for i in request.args.get("ids", "").split(",") if i][:200]
    records = [r for r in (engine().visible(i, current_owner()) for i in ids) if r is not None]
    if not records:
        abort(404)
    buffer = io.StringIO()
    writer = SpreadsheetWriter(buffer)
    codes = in_class_order({code for r in records for code in r["probabilities"]})
    writer.writerow(["id", "file", "task", *summary_columns(codes), "case", "created"])
    for r in records:
        writer.writerow([r["id"], r["original_name"], r["task"], *summary_values(r["summary"], codes),
                         r["case_ref"] or "", r["created"]])
    return Response(buffer.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=analyses.csv"})


@blueprint.app_context_processor
def core_names():
    """Names the templates share with the core: reliability states and image kinds."""
    return {"reliability_labels": STATE_LABELS, "image_kinds": IMAGE_KINDS, "verdict_of": verdict_of}


@blueprint.app_template_filter("utc")
def utc(stored_time):
    """One way to write a time on every page, report and PDF: 2026-12-03 13:38 UTC (stored
    times are ISO 8601 in UTC; a date alone is written as it is)."""
    text = str(stored_time or "")
    return f"{text[:16].replace('T', ' ')} UTC" if "T" in text else text


@blueprint.app_template_filter("percent")
def percent(probability):
    """A probability as a whole percentage that never reads 0% or 100% when it is not."""
    if probability is None:
        return ""
    if 0 < probability < 0.01:
        return "<1%"
    if 0.99 < probability < 1:
        return ">99%"
    return f"{probability * 100:.0f}%"
