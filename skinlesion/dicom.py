"""DICOM in: dermoscopic and photographic images from a PACS, read with pydicom.

Accepted are VL Photographic Image and Dermoscopic Photography objects (any other kind is
refused with its name). Besides the pixels a file says whose it is (PatientID), where on the
body (AnatomicRegionSequence, a SNOMED CT code; ImageLaterality) and, when the device
knows it, the physical size of a pixel (PixelSpacing) that gives millimetres.
"""
import io

import numpy as np

from .body_sites import SITES

PREAMBLE = 128  # the "DICM" magic follows a 128-byte preamble
ACCEPTED_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.77.1.4": "VL Photographic Image",
    "1.2.840.10008.5.1.4.1.1.77.1.7": "Dermoscopic Photography Image",
}
SIDES = {"L": "left", "R": "right"}


def is_dicom(data):
    return isinstance(data, (bytes, bytearray, memoryview)) and bytes(data[PREAMBLE:PREAMBLE + 4]) == b"DICM"


def read_header(data):
    """The dataset, its pixel data deferred (read when `pixels()` asks for it). Raises ValueError
    for a damaged or foreign file."""
    import pydicom
    from pydicom.errors import InvalidDicomError
    try:
        dataset = pydicom.dcmread(io.BytesIO(bytes(data)), stop_before_pixels=False, defer_size=1024)
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"The DICOM file cannot be read ({type(error).__name__}: {error}).") from None
    sop_class = str(dataset.get("SOPClassUID", ""))
    if sop_class not in ACCEPTED_CLASSES:
        name = getattr(dataset.get("SOPClassUID"), "name", "") or sop_class or "no SOP class"
        raise ValueError(f"This DICOM object is a {name}; upload a VL Photographic Image or a "
                         "Dermoscopic Photography Image.")
    return dataset


def pixels(dataset):
    """(H, W, 3) or (H, W) uint8-ready array of the first frame. Raises ValueError."""
    try:
        array = dataset.pixel_array
    except Exception as error:  # untrusted bytes: any decoder failure is a damaged file
        raise ValueError(f"The DICOM file's pixels cannot be decoded ({type(error).__name__}: {error}).") from None
    if int(dataset.get("NumberOfFrames", 1) or 1) > 1:
        array = array[0]
    return np.asarray(array)


def facts(dataset):
    """What the file says besides its pixels: patient_id, body_site, laterality, mm_per_px,
    study_uid (each only when present)."""
    found = {}
    if str(dataset.get("PatientID", "")).strip():
        found["patient_id"] = str(dataset.PatientID).strip()[:100]
    codes = {site: None for site in SITES}
    for item in dataset.get("AnatomicRegionSequence", []):
        value = str(item.get("CodeValue", ""))
        from .body_sites import site_code
        for site in codes:
            if site_code(site)[1] == value:
                found["body_site"] = site
    side = str(dataset.get("ImageLaterality", "") or dataset.get("Laterality", "")).strip()
    if side in SIDES:
        found["laterality"] = SIDES[side]
    spacing = dataset.get("PixelSpacing") or dataset.get("ImagerPixelSpacing")
    if spacing:
        try:
            found["mm_per_px"] = float(spacing[1] if len(spacing) > 1 else spacing[0])
        except (TypeError, ValueError, IndexError):
            pass
    if dataset.get("StudyInstanceUID"):
        found["study_uid"] = str(dataset.StudyInstanceUID)
    return found


def dicom_facts(data):
    """facts() of bytes when they are an accepted DICOM file, else {} (never raises)."""
    if not is_dicom(data):
        return {}
    try:
        return facts(read_header(data))
    except ValueError:
        return {}
