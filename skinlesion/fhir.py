"""An analysis, or a lesion's visits, as a FHIR Bundle (R4B, 4.3: R4's resources, among them
Media, which R5 dropped), built from fhir.resources' validated models, never written by hand.

One Bundle holds the Patient (the clinic's identifier), a BodyStructure for the lesion (its
site in SNOMED CT), a Device for each model with its version, and per analysis a
DiagnosticReport whose results are Observations (each class's probability, the referral
flag, the reliability state and the lesion's measurements, with UCUM units) and whose media
are the images. The classifier's reading is not a diagnosis; the report says so.
"""
from fhir.resources.R4B.bodystructure import BodyStructure
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.device import Device
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.media import Media
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient

from .body_sites import side_code, site_code, site_words
from .classes import DISPLAY_NAMES
from .verdict import verdict_of

UCUM = "http://unitsofmeasure.org"
IDENTIFIER_SYSTEM = "urn:lesion-lens:patient"  # a clinic that has its own system names it instead
NOT_A_DIAGNOSIS = "Not a diagnostic device: a second look at a dermoscopic image; decisions rest with a clinician."


def _concept(code_tuple, text=None):
    if code_tuple is None:
        return {"text": text} if text else None
    system, code, display = code_tuple
    return {"coding": [{"system": system, "code": code, "display": display}], "text": text or display}


def _ref(resource):
    return {"reference": f"urn:uuid:{resource.id}"}


def _entry(resource):
    return {"fullUrl": f"urn:uuid:{resource.id}", "resource": resource}


def _uuid(text):
    """A stable UUID for a row id or name, so that a Bundle fetched twice names the same things."""
    import uuid
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:lesion-lens:{text}"))


def patient_resource(patient):
    return Patient(id=_uuid(patient["id"]), identifier=[{"system": IDENTIFIER_SYSTEM, "value": patient["identifier"]}])


def lesion_resource(lesion, patient_resource_):
    qualifier = _concept(side_code(lesion.get("laterality")))
    return BodyStructure(
        id=_uuid(lesion["id"]), patient=_ref(patient_resource_), description=lesion["label"],
        location=_concept(site_code(lesion.get("body_site")), site_words(lesion.get("body_site"), lesion.get("laterality")) or None),
        locationQualifier=[qualifier] if qualifier else None)


def device_resources(models):
    """{kind: Device} for the models of an analysis (name, version, weights' sha256)."""
    devices = {}
    for kind, about in sorted(models.items()):
        devices[kind] = Device(id=_uuid(f"{kind}:{about.get('name')}:{about.get('version')}:{about.get('sha256')}"),
                               deviceName=[{"name": about.get("name") or kind, "type": "model-name"}],
                               version=[{"value": f"{about.get('version')} (weights sha256 {about.get('sha256')})"}])
    return devices


def _quantity(value, unit, code):
    return {"value": round(float(value), 4), "unit": unit, "system": UCUM, "code": code}


def _observation(name, subject, focus, device, effective, **value):
    import uuid
    return Observation(id=str(uuid.uuid4()), status="final", code={"text": name}, subject=subject,
                       focus=[focus] if focus else None, device=device, effectiveDateTime=effective, **value)


def analysis_resources(record, subject, body_structure, image_url):
    """[DiagnosticReport, Observations..., Media..., Devices...] of one stored analysis.
    image_url(kind) -> (absolute URL, media type) of that image, or None."""
    summary, effective = record["summary"], record["created"]
    devices = device_resources(summary.get("models") or {})
    classifier = devices.get("classifier")
    by = _ref(classifier) if classifier else None
    focus = _ref(body_structure) if body_structure else None
    observations = [
        _observation(f"Probability of {DISPLAY_NAMES.get(code, code)} ({code})", subject, focus, by, effective,
                     valueQuantity=_quantity(probability * 100, "%", "%"))
        for code, probability in sorted(summary["probabilities"].items())]
    observations.append(_observation("Malignant classes together", subject, focus, by, effective,
                                     valueQuantity=_quantity(record["malignant_probability"] * 100, "%", "%")))
    observations.append(_observation("Referral flag (malignant probability at or above the model's threshold)",
                                     subject, focus, by, effective, valueBoolean=bool(record["suspicious"])))
    verdict = verdict_of(summary, record["suspicious"])
    observations.append(_observation("Reliability of the reading", subject, focus, by, effective,
                                     valueCodeableConcept={"text": verdict.state or "not assessed"}))
    if summary.get("similar"):  # the reference cases shown beside the reading, nearest first
        observations.append(_observation(
            "Similar confirmed cases (reference gallery: image id, confirmed diagnosis, cosine similarity)",
            subject, focus, by, effective, valueString="; ".join(
                f"{case['image_id']} {case['dx']} {case['similarity']:.3f}" for case in summary["similar"])))
    segmenter = devices.get("segmenter")
    observations += _measurements(record["lesion"], subject, focus, _ref(segmenter) if segmenter else None, effective)
    media = [Media(id=_uuid(f"{record['id']}:{kind}"), status="completed", subject=subject,
                   bodySite=body_structure.location if body_structure else None, createdDateTime=effective,
                   content={"contentType": found[1], "url": found[0], "title": title})
             for kind, title in (("upload", "The image as uploaded"), ("contour", "Lesion outline (U-Net)"),
                                 ("gradcam", "Grad-CAM overlay"), ("saliency", "Saliency map"))
             if (found := image_url(kind))]
    report = DiagnosticReport(
        id=_uuid(record["id"]), status="final", code={"text": "Dermoscopic image analysis (Lesion Lens)"},
        subject=subject, effectiveDateTime=effective, issued=effective,
        result=[_ref(o) for o in observations], media=[{"link": _ref(m)} for m in media] or None,
        conclusion=f"{verdict.headline}. Models: " + "; ".join(
            f"{about.get('name')} {about.get('version')}" for _, about in sorted((summary.get("models") or {}).items()))
        + f". {NOT_A_DIAGNOSIS}")
    return [report, *observations, *media, *devices.values()]


def _measurements(lesion, subject, focus, by, effective):
    measured = (lesion or {}).get("measurements")
    if not measured or lesion.get("outline_problems"):  # an unreliable outline gives no figures
        return []
    found = []
    if measured.get("max_diameter_mm") is not None:
        found.append(("Largest diameter", _quantity(measured["max_diameter_mm"], "mm", "mm")))
        found.append(("Area", _quantity(measured["area_mm2"], "mm2", "mm2")))
    else:
        found.append(("Largest diameter (image pixels; no physical scale known)",
                      _quantity(measured["max_diameter_px"], "pixels", "{pixels}")))
        found.append(("Area (image pixels; no physical scale known)", _quantity(measured["area_px"], "pixels", "{pixels}")))
    found.append(("Asymmetry (0 symmetric)", _quantity(measured["asymmetry"], "1", "1")))
    found.append(("Border irregularity (1.0 a circle)", _quantity(measured["border_irregularity"], "1", "1")))
    found.append(("Number of colours", _quantity(measured["colour_count"], "1", "1")))
    return [_observation(name, subject, focus, by, effective, valueQuantity=value) for name, value in found]


def bundle(records, patient=None, lesion=None, image_url=lambda record, kind: None):
    """A collection Bundle of the analyses `records` (one, or a lesion's visits), with their
    patient and lesion when known. image_url(record, kind) -> (absolute URL, media type) or None."""
    entries, subject, body_structure = [], None, None
    if patient:
        patient_ = patient_resource(patient)
        subject = _ref(patient_)
        entries.append(patient_)
        if lesion:
            body_structure = lesion_resource(lesion, patient_)
            entries.append(body_structure)
    seen = set()
    for record in records:
        for resource in analysis_resources(record, subject, body_structure, lambda kind: image_url(record, kind)):
            if resource.id not in seen:  # one Device for visits made with the same model
                seen.add(resource.id)
                entries.append(resource)
    return Bundle(type="collection", timestamp=records[-1]["created"] if records else None,
                  entry=[_entry(resource) for resource in entries])
