"""DICOM photographs made by the tests (pydicom), as a clinic's PACS would send them."""
import io

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

VL_PHOTOGRAPHIC = "1.2.840.10008.5.1.4.1.1.77.1.4"
DERMOSCOPIC = "1.2.840.10008.5.1.4.1.1.77.1.7"


def dermoscopic_dicom(rgb, patient_id="P-DICOM-1", site=codes.SCT.Forearm, laterality="L",
                      pixel_spacing_mm=None, sop_class=DERMOSCOPIC, study_uid=None):
    """Bytes of a DICOM file holding the (H, W, 3) uint8 image `rgb`."""
    height, width = rgb.shape[:2]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID, dataset.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    dataset.PatientID, dataset.PatientName = patient_id, "Test^Patient"
    dataset.StudyInstanceUID = study_uid or generate_uid()
    dataset.SeriesInstanceUID = generate_uid()
    dataset.Modality = "XC"
    dataset.Rows, dataset.Columns = height, width
    dataset.SamplesPerPixel, dataset.PhotometricInterpretation, dataset.PlanarConfiguration = 3, "RGB", 0
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit, dataset.PixelRepresentation = 8, 8, 7, 0
    dataset.PixelData = np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()
    if site is not None:
        region = Dataset()
        region.CodeValue, region.CodingSchemeDesignator, region.CodeMeaning = site.value, "SCT", site.meaning
        dataset.AnatomicRegionSequence = [region]
    if laterality:
        dataset.ImageLaterality = laterality
    if pixel_spacing_mm:
        dataset.PixelSpacing = [pixel_spacing_mm, pixel_spacing_mm]
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
