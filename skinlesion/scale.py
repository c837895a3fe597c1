"""Millimetres: the physical size of an image's pixels, where it is known.

A clinic knows its dermatoscope's field of view (what a photograph's longer side spans, in mm).
It says so per device in a scales file (SKINLESION_SCALES for the web app, --scales for
predict.py), keyed by the camera's EXIF make and model, with "*" for every other image:

    {"Canon EOS 80D": {"field_of_view_mm": 25}, "*": {"field_of_view_mm": 20}}

An image can also carry its own scale: a DICOM file's pixel spacing, or EXIF resolution tags in centimetres or inches are used
only when the field of view they imply is one a dermatoscope has (cameras write 72 or 300 dpi
by default, which would make a lesion a metre wide). Otherwise sizes stay in pixels, and the
page says so.
"""
import json
from pathlib import Path

FIELD_OF_VIEW_MM = (5.0, 60.0)  # what a dermatoscope's photograph spans, narrowest to widest
EXIF_MAKE, EXIF_MODEL = 0x010F, 0x0110
EXIF_X_RESOLUTION, EXIF_RESOLUTION_UNIT = 0x011A, 0x0128
MM_PER_UNIT = {2: 25.4, 3: 10.0}  # ResolutionUnit: inch, centimetre


class ScaleError(ValueError):
    """A scales file that cannot be used; str(error) says which and why."""


def read_scales(path):
    """The scales file: {device or "*": {"field_of_view_mm": number}}. Raises ScaleError."""
    try:
        scales = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise ScaleError(f"The scales file {path} cannot be read: {error}") from None
    for device, entry in scales.items() if isinstance(scales, dict) else [("", None)]:
        width = entry.get("field_of_view_mm") if isinstance(entry, dict) else None
        if not isinstance(width, (int, float)) or not FIELD_OF_VIEW_MM[0] <= width <= FIELD_OF_VIEW_MM[1]:
            raise ScaleError(f"{path}: {device!r} needs a field_of_view_mm between {FIELD_OF_VIEW_MM[0]:g} "
                             f"and {FIELD_OF_VIEW_MM[1]:g} (what a photograph's longer side spans, in mm).")
    return scales


def device_of(exif):
    """'Make Model' from an image's EXIF tags ('' when it has none)."""
    words = [str(exif.get(tag, "")).strip().strip("\x00") for tag in (EXIF_MAKE, EXIF_MODEL)]
    return " ".join(word for word in words if word)


def scale_of(decoded, scales=None):
    """{"mm_per_px", "source"} for an upload (a skinlesion.imageio.Decoded), or None."""
    longer_side = max(decoded.width, decoded.height)
    spacing = decoded.dicom.get("mm_per_px")
    if spacing and FIELD_OF_VIEW_MM[0] <= spacing * longer_side <= FIELD_OF_VIEW_MM[1]:
        return {"mm_per_px": spacing, "source": "the DICOM file's pixel spacing"}
    exif = decoded.exif
    unit, resolution = exif.get(EXIF_RESOLUTION_UNIT), exif.get(EXIF_X_RESOLUTION)
    if unit in MM_PER_UNIT and resolution:
        mm_per_px = MM_PER_UNIT[unit] / float(resolution)
        if FIELD_OF_VIEW_MM[0] <= mm_per_px * longer_side <= FIELD_OF_VIEW_MM[1]:
            return {"mm_per_px": mm_per_px, "source": "the image's own resolution tags"}
    if scales:
        device = device_of(exif)
        entry, named = (scales[device], device) if device in scales else (scales.get("*"), None)
        if entry:
            where = f"the field of view set for {named}" if named else "the clinic's default field of view"
            return {"mm_per_px": entry["field_of_view_mm"] / longer_side,
                    "source": f"{where} ({entry['field_of_view_mm']:g} mm across)"}
    return None


def in_millimetres(measurements, scale, analysed_side, original_side):
    """Add diameter (mm) and area (mm²) to measurements made on the analysed image, whose
    longer side (`analysed_side`) may be shorter than the upload's whose scale is known."""
    if not measurements or not scale:
        return measurements
    mm_per_px = scale["mm_per_px"] * original_side / analysed_side
    return dict(measurements, max_diameter_mm=round(measurements["max_diameter_px"] * mm_per_px, 2),
                area_mm2=round(measurements["area_px"] * mm_per_px ** 2, 2),
                scale={"mm_per_px": round(mm_per_px, 5), "source": scale["source"]})
