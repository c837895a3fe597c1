"""Turn untrusted bytes or a path into an 8-bit RGB array, or refuse with a reason."""
import ctypes
import io
import os
import threading
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .dicom import facts as dicom_facts_of
from .dicom import is_dicom
from .dicom import pixels as dicom_pixels
from .dicom import read_header as read_dicom_header

MIN_SIDE = 32
MAX_PIXELS = 50_000_000  # a decompression bomb is refused, not decoded
# Dermatoscopes and phone cameras give 4:3, 3:2 or 16:9 frames of at most ~9,000 px a side.
# A 100000x32 strip is no photograph, and its size alone can make later steps blow up.
MAX_SIDE = 12_000
MAX_ASPECT = 10  # longer side / shorter side

# Pillow's own guard only warns below 2x its limit; we want a hard, early refusal.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
# Memory a decoded image may take, as Pillow holds it: the largest 8-bit RGB image allowed
# (Pillow keeps RGB in 4 bytes a pixel). A small file can declare a deep or wide format (a
# 95 KB 16-bit PNG, a 298 KB float TIFF) that the pixel limit alone lets through.
MAX_DECODED_BYTES = MAX_PIXELS * 4
# Bytes a pixel as Pillow holds it; with alpha twice that, since shrinking makes a premultiplied
# copy first. Modes not named: 4.
BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2,
                   "LA": 8, "PA": 8, "RGBA": 8}
# Decodes at once in a process: each may take up to MAX_DECODED_BYTES, whatever the number
# of requests a server lets in at the same time.
DECODE_SLOTS = threading.BoundedSemaphore(2)
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
FREED_AT_ONCE_BYTES = 4 * 2**20


def return_large_blocks_promptly():
    """Make glibc map blocks of 4 MB and more on their own and unmap them when freed. By
    default it raises that threshold to 32 MB after the first large free, so the 16 MB blocks
    Pillow decodes into come from per-thread arenas that keep them: 8 concurrent 49 MP
    uploads took `python app.py` from 0.56 to 1.9 GB, and 1.0 GB with this (docs/robustness.md).
    A server calls it once at start; elsewhere (not glibc) it does nothing."""
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, FREED_AT_ONCE_BYTES))
    except (OSError, AttributeError):
        return False


# JPEG-coded formats that Pillow can decode at 1/2, 1/4 or 1/8 scale directly.
DRAFT_FORMATS = {"JPEG", "MPO"}

ACCEPTED_FORMATS = {"JPEG", "PNG", "BMP", "WEBP", "TIFF", "MPO", "DICOM"}
# The file names taken as images when a folder is searched (data sets, predict.py).
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


class ImageError(ValueError):
    """An input that cannot be analysed; str(error) is a message for a person."""


def _open(source):
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise ImageError("The file is empty.")
        if is_dicom(source):
            return _open_dicom(source)
        return Image.open(io.BytesIO(bytes(source)))
    if isinstance(source, (str, os.PathLike)):
        if not os.path.isfile(source):
            raise ImageError(f"No such file: {os.fspath(source)}")
        if os.path.getsize(source) == 0:
            raise ImageError("The file is empty.")
        return Image.open(source)
    return Image.open(source)  # a file-like object


def _open_dicom(data):
    """A DICOM photograph as a Pillow image of format "DICOM" (its size checked before its
    pixels are decoded), so that it goes through the same checks as any other upload."""
    try:
        dataset = read_dicom_header(data)
        check_dimensions(int(dataset.Columns), int(dataset.Rows))
        array = dicom_pixels(dataset)
    except ValueError as error:
        raise ImageError(str(error)) from None
    except AttributeError:
        raise ImageError("The DICOM file has no image (no Rows or Columns).") from None
    if array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8) if array.max(initial=0) <= 255 else \
            (array / max(1, array.max()) * 255).astype(np.uint8)
    image = Image.fromarray(array)
    image.format = "DICOM"
    image.info["dicom_facts"] = dicom_facts_of(dataset)  # from the header already read
    return image


def _to_rgb8(image):
    """Any Pillow mode (L, LA, P, RGBA, CMYK, I;16, I, F, ...) to 8-bit RGB."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit or float greyscale: scale by the actual range, not by clipping.
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) / (high - low) * 255.0 if high > low else np.zeros_like(values)
        image = Image.fromarray(scaled.round().astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent areas become white, not black: black reads as "lesion".
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))


def check_decoded_bytes(image):
    """Refuse, before decoding, an image whose pixels would take more memory than allowed."""
    width, height = image.size
    decoded = width * height * BYTES_PER_PIXEL.get(image.mode, 4)
    if decoded > MAX_DECODED_BYTES:
        raise ImageError(
            f"The image ({width}x{height} pixels, mode {image.mode}) would take {decoded // 2**20} MB "
            f"to decode and shrink; the limit is {MAX_DECODED_BYTES // 2**20} MB. Save it as an 8-bit JPEG or PNG.")


def check_dimensions(width, height, max_pixels=MAX_PIXELS, min_side=MIN_SIDE):
    """Refuse, before decoding, a size no dermoscopic image has. Raises ImageError."""
    if width * height > max_pixels:
        raise ImageError(
            f"The image is too large ({width}x{height} pixels); "
            f"the limit is {max_pixels // 1_000_000} megapixels.")
    if min(width, height) < min_side:
        raise ImageError(
            f"The image is too small ({width}x{height} pixels); "
            f"at least {min_side} pixels a side are needed.")
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise ImageError(
            f"The image is {width}x{height} pixels, a strip more than {MAX_ASPECT} times longer "
            "than it is wide; a dermoscopic photograph is close to square (4:3 or 3:2).")
    if max(width, height) > MAX_SIDE:
        raise ImageError(
            f"The image is {width}x{height} pixels; no dermatoscope gives a side longer than "
            f"{MAX_SIDE:,} pixels. Upload the photograph as the camera saved it.")


EXIF_ORIENTATION = 0x0112
TURNED = {5, 6, 7, 8}  # EXIF orientations shown with width and height exchanged


def image_dimensions(source):
    """(width, height) of bytes or a path as the image is shown (after its EXIF rotation),
    read from the header only, or None when it cannot be read."""
    if is_dicom(source):  # its header says; opening it would decode every pixel
        try:
            dataset = read_dicom_header(source)
            return int(dataset.Columns), int(dataset.Rows)
        except (ValueError, AttributeError):
            return None
    try:
        with _open(source) as image:
            width, height = image.size
            turned = _orientation(image) in TURNED
            return (height, width) if turned else (width, height)
    except Exception:  # untrusted bytes: load_image gives the reason later
        return None


def header_exif(image):
    """An opened image's EXIF tags, read from the header only. Pillow's PNG reader decodes
    every pixel to look for an EXIF chunk after the image data; such a late chunk is not
    looked for here (load_image's decode still applies its orientation)."""
    if image.format == "PNG" and "exif" not in image.info:
        return {}
    return dict(image.getexif())


def _orientation(image):
    return header_exif(image).get(EXIF_ORIENTATION)


def bounded_size(width, height, max_side):
    """The size, keeping the aspect, whose longer side is at most max_side."""
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def downscale(image, max_side):
    """An RGB array shrunk (area averaging) so its longer side is at most max_side."""
    height, width = image.shape[:2]
    if max(height, width) <= max_side:
        return image
    import cv2
    return cv2.resize(image, bounded_size(width, height, max_side), interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class Decoded:
    """An upload decoded once: its pixels and what its header said."""
    pixels: np.ndarray  # (H, W, 3) uint8 RGB, EXIF orientation applied, shrunk to max_side
    width: int  # the upload's own size, as shown (after its EXIF rotation)
    height: int
    exif: dict = field(default_factory=dict)  # header EXIF tags ({} for none, and for DICOM)
    dicom: dict = field(default_factory=dict)  # skinlesion.dicom.facts of a DICOM file, else {}

    @property
    def original_size(self):
        return {"width": self.width, "height": self.height}


def load_image(source, max_pixels=MAX_PIXELS, min_side=MIN_SIDE, max_side=None):
    """The pixels of decode(): an (H, W, 3) uint8 RGB array."""
    return decode(source, max_pixels, min_side, max_side).pixels


def decode(source, max_pixels=MAX_PIXELS, min_side=MIN_SIDE, max_side=None):
    """Decode an image from bytes, a path or a file object, once: a Decoded.

    EXIF orientation is applied. max_side: shrink so the longer side is at most this
    (a JPEG is decoded at a reduced scale directly: a 49 MP photograph never exists in
    memory at full size; other formats are shrunk before any copy or conversion). At most
    DECODE_SLOTS decodes run at once. Raises ImageError with a human message for anything
    that is not a usable still image.
    """
    with DECODE_SLOTS:
        return _decode(source, max_pixels, min_side, max_side)


def _decode(source, max_pixels, min_side, max_side):
    # A truncated upload is refused, never half-decoded: Pillow's switch for that is global and
    # other libraries turn it on when imported (WeasyPrint does), so it is set back here.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = _open(source)
            if image.format not in ACCEPTED_FORMATS:
                raise ImageError(
                    f"Unsupported image format {image.format or 'unknown'}: "
                    "use JPEG, PNG, BMP, WebP, TIFF or DICOM.")
            width, height = image.size
            check_dimensions(width, height, max_pixels, min_side)
            if getattr(image, "n_frames", 1) > 1 and image.format != "MPO":
                raise ImageError("Animated or multi-page images are not supported: "
                                 "upload a single still image.")
            if max_side and image.format in DRAFT_FORMATS:
                image.draft(None, bounded_size(width, height, max_side))
            check_decoded_bytes(image)
            image.load()
            # The header's tags once the pixels are in: read before, a TIFF's made 8 concurrent
            # decodes of a 49 MP float TIFF take +1.3 GB instead of +0.44 GB.
            exif = {} if image.format == "DICOM" else header_exif(image)
            dicom = image.info.get("dicom_facts", {})
            shown = (height, width) if exif.get(EXIF_ORIENTATION) in TURNED else (width, height)
            if max_side and max(image.size) > max_side:  # area averaging, before any copy
                image = image.resize(bounded_size(*image.size, max_side), Image.Resampling.BOX)
            return Decoded(_to_rgb8(ImageOps.exif_transpose(image)), *shown, exif, dicom)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("This file is not an image that can be read "
                         "(JPEG, PNG, BMP, WebP or TIFF expected).") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError("The image has too many pixels to be analysed safely.") from None
    except MemoryError:
        raise ImageError("The image is too large to decode.") from None
    except Exception as error:
        # Untrusted bytes: Pillow's decoders report corrupt data as OSError, SyntaxError,
        # ValueError, EOFError, but also TypeError/KeyError (a TIFF without its width
        # tag, found by tests/test_fuzz.py). Any failure to decode is a damaged file.
        raise ImageError(f"The image file is damaged or truncated ({type(error).__name__}: {error}).") from None
