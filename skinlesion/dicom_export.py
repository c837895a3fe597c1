"""An analysis as DICOM objects of one patient and study, made with highdicom.

- the analysed image as a Secondary Capture (the pixels the outline was drawn on),
- the lesion outline as a binary Segmentation of that image,
- the outline and Grad-CAM overlays as Secondary Captures,
- the findings as a Comprehensive SR: the reading, its reliability, the referral flag, each
  class's probability and the measurements (none from an unreliable outline).

The study is the uploaded DICOM file's when there was one, else a UID derived from the
analysis (the same export twice names the same study). Concepts without a standard code use
the private coding scheme 99LESIONLENS.
"""
import io

import numpy as np

from .classes import DISPLAY_NAMES
from .verdict import verdict_of

MANUFACTURER = "Lesion Lens"
PRIVATE = "99LESIONLENS"
NOT_A_DIAGNOSIS = "Not a diagnostic device: a second look at a dermoscopic image; decisions rest with a clinician."


def _uid(*parts):
    from pydicom.uid import generate_uid
    return generate_uid(entropy_srcs=[str(part) for part in parts])


def _bytes(dataset):
    buffer = io.BytesIO()
    dataset.save_as(buffer)
    return buffer.getvalue()


def analysis_objects(record, original, mask, overlays, patient_id="", study_uid=None):
    """{file name: DICOM bytes}. original: (H, W, 3) uint8 analysed image; mask: (H, W) bool
    outline; overlays: {name: (H, W, 3) uint8}; patient_id: the clinic's identifier."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    study = study_uid or _uid(record["id"], "study")
    common = {"study_instance_uid": study, "manufacturer": MANUFACTURER, "patient_id": patient_id or None,
              "patient_name": f"{patient_id}^" if patient_id else None}

    def capture(pixels, series, number):
        return hd.sc.SCImage(pixel_array=np.ascontiguousarray(pixels, dtype=np.uint8), photometric_interpretation="RGB",
                             bits_allocated=8, coordinate_system="PATIENT", series_instance_uid=_uid(record["id"], series),
                             series_number=number, sop_instance_uid=_uid(record["id"], series, "instance"),
                             instance_number=1, patient_orientation=("L", "F"), **common)

    image = capture(original, "image", 1)
    objects = {"image.dcm": image}
    models = record["summary"].get("models") or {}
    segmenter = models.get("segmenter") or {}
    if mask is not None and mask.any():
        description = hd.seg.SegmentDescription(
            segment_number=1, segment_label="Lesion outline (U-Net)",
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=codes.SCT.Lesion, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=hd.AlgorithmIdentificationSequence(
                name=segmenter.get("name") or "U-Net", version=str(segmenter.get("version") or "unknown"),
                family=codes.DCM.ArtificialIntelligence))
        objects["outline-seg.dcm"] = hd.seg.Segmentation(
            source_images=[image], pixel_array=mask[None].astype(np.uint8), segmentation_type="BINARY",
            segment_descriptions=[description], series_instance_uid=_uid(record["id"], "seg"), series_number=2,
            sop_instance_uid=_uid(record["id"], "seg", "instance"), instance_number=1, manufacturer=MANUFACTURER,
            manufacturer_model_name=segmenter.get("name") or "U-Net", software_versions=str(segmenter.get("version")),
            device_serial_number=str(segmenter.get("sha256") or "0"))
    for number, (name, pixels) in enumerate(sorted(overlays.items()), start=3):
        objects[f"{name}-sc.dcm"] = capture(pixels, name, number)
    objects["findings-sr.dcm"] = _findings(record, image, models)
    return {name: _bytes(dataset) for name, dataset in objects.items()}


def _findings(record, image, models):
    import highdicom as hd
    from highdicom.sr import CodedConcept, ContainerContentItem, NumContentItem, TextContentItem

    def concept(code, meaning, scheme=PRIVATE):
        return CodedConcept(code, scheme, meaning)

    def text(name, value):
        return TextContentItem(name=name, value=value[:1024], relationship_type="CONTAINS")

    def number(name, value, unit_code, unit_meaning):
        return NumContentItem(name=name, value=round(float(value), 4),
                              unit=CodedConcept(unit_code, "UCUM", unit_meaning), relationship_type="CONTAINS")

    summary = record["summary"]
    verdict = verdict_of(summary, record["suspicious"])
    finding = concept("121071", "Finding", "DCM")
    items = [text(finding, verdict.headline),
             text(concept("RELIABILITY", "Reliability of the reading"), verdict.state or "not assessed"),
             text(concept("REFERRAL", "Referral flag"), "raised" if record["suspicious"] else "not raised"),
             number(concept("MALIGNANT", "Malignant classes together"), record["malignant_probability"] * 100, "%", "percent")]
    items += [number(concept(f"P-{code}", f"Probability of {DISPLAY_NAMES.get(code, code)}"), p * 100, "%", "percent")
              for code, p in sorted(summary["probabilities"].items())]
    measured = (record["lesion"] or {}).get("measurements")
    if measured and not record["lesion"].get("outline_problems"):
        if measured.get("max_diameter_mm") is not None:
            items += [number(concept("DIAMETER", "Largest diameter"), measured["max_diameter_mm"], "mm", "millimeter"),
                      number(concept("AREA", "Area"), measured["area_mm2"], "mm2", "square millimeter")]
        else:
            items += [number(concept("DIAMETER", "Largest diameter, image pixels"), measured["max_diameter_px"],
                             "{pixels}", "pixels"),
                      number(concept("AREA", "Area, image pixels"), measured["area_px"], "{pixels}", "pixels")]
        items += [number(concept("ASYMMETRY", "Asymmetry"), measured["asymmetry"], "1", "no units"),
                  number(concept("BORDER", "Border irregularity"), measured["border_irregularity"], "1", "no units")]
    items.append(text(concept("MODELS", "Models"), "; ".join(
        f"{about.get('name')} {about.get('version')}" for _, about in sorted(models.items()))))
    items.append(text(concept("DISCLAIMER", "Disclaimer"), NOT_A_DIAGNOSIS))
    root = ContainerContentItem(name=concept("121070", "Findings", "DCM"))
    root.ContentSequence = items
    return hd.sr.ComprehensiveSR(evidence=[image], content=root, series_instance_uid=_uid(record["id"], "sr"),
                                 series_number=9, sop_instance_uid=_uid(record["id"], "sr", "instance"),
                                 instance_number=1, manufacturer=MANUFACTURER)
