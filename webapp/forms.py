"""Reading and checking the upload form; shared by the pages and the JSON API."""
from dataclasses import dataclass
from pathlib import Path

from flask import current_app

from .config import settings_of

from skinlesion.imageio import image_dimensions


MAX_CASE_CHARS = 100
MAX_NOTE_CHARS = 2000


class FormError(ValueError):
    """A request the user can fix; str(error) is shown to them. status: the HTTP code."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


@dataclass
class Upload:
    data: bytes
    name: str  # the client's file name: shown, never used in a path


def example_names():
    folder = Path(settings_of(current_app).examples_dir)
    return sorted(p.name for p in folder.glob("*.jpg")) if folder.is_dir() else []


def read_uploads(request, field="image"):
    """The uploaded files (or the chosen example image). Raises FormError."""
    example = request.form.get("example")
    if example:
        if example not in example_names():  # a fixed list: no path from the client is opened
            raise FormError("Unknown example image.")
        path = Path(settings_of(current_app).examples_dir) / example
        return [Upload(path.read_bytes(), example)]
    files = [f for f in request.files.getlist(field) if f and (f.filename or f.content_length)]
    if not files:
        raise FormError("No file was uploaded: choose a dermoscopic image (JPEG, PNG, BMP, WebP or TIFF).")
    limit = settings_of(current_app).max_files
    if len(files) > limit:
        raise FormError(f"Too many files at once ({len(files)}); the limit is {limit}.")
    uploads = [Upload(f.read(), f.filename or "upload") for f in files]
    _check_batch_pixels(uploads, settings_of(current_app).max_batch_megapixels)
    return uploads


def _check_batch_pixels(uploads, limit_megapixels):
    """Bound the work one request can ask for (a few KB of JPEG can hold 49 megapixels).
    Read from the headers only; an unreadable file counts nothing and is refused later."""
    total = sum(w * h for w, h in filter(None, (image_dimensions(u.data) for u in uploads)))
    if total > limit_megapixels * 1_000_000:
        raise FormError(f"These {len(uploads)} images hold {total / 1e6:.0f} megapixels together; one "
                        f"request may hold at most {limit_megapixels}. Send them in smaller batches.", 413)


def read_task(request, tasks):
    task = request.form.get("task") or tasks[0]
    if task not in tasks:
        raise FormError(f"Unknown task {task!r}: choose {' or '.join(tasks)}.")
    return task


def read_case_and_note(request):
    """The case reference and note, stripped; over its limit either is refused, never cut."""
    values = []
    for field, label, limit in (("case", "case reference", MAX_CASE_CHARS), ("note", "note", MAX_NOTE_CHARS)):
        value = request.form.get(field, "").strip()
        if len(value) > limit:
            raise FormError(f"The {label} is {len(value):,} characters long; it may hold at most {limit:,}.")
        values.append(value)
    return tuple(values)


def read_visit(request):
    """Whose lesion the upload shows (webapp.engine.Visit), or None for a loose image. The
    case reference of the releases before patients stands for the patient identifier."""
    from .engine import Visit
    text = {name: request.form.get(name, "").strip() for name in
            ("patient", "case", "lesion", "lesion_label", "site", "laterality", "map_view", "map_x", "map_y")}
    patient = text["patient"] or text["case"]
    if len(patient) > MAX_CASE_CHARS or len(text["lesion_label"]) > MAX_CASE_CHARS:
        raise FormError(f"A patient identifier or lesion name may hold at most {MAX_CASE_CHARS} characters.")
    if not patient and text["lesion"] in ("", "new"):
        return None
    try:
        x, y = (float(text[name]) if text[name] else None for name in ("map_x", "map_y"))
    except ValueError:
        raise FormError("The point on the body map is not a number.") from None
    return Visit(patient=patient, lesion_id=text["lesion"], label=text["lesion_label"], site=text["site"],
                 laterality=text["laterality"], view=text["map_view"], x=x, y=y)


def too_many_parts_message(max_files):
    """werkzeug's 413 within the size limit: too many form parts, or a text field too long."""
    return (f"The form has too many fields or files (at most {max_files} images at once), or a text "
            f"field is too long (a case reference holds at most {MAX_CASE_CHARS:,} characters, "
            f"a note {MAX_NOTE_CHARS:,}).")
