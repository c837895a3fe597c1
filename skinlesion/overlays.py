"""Explanations and outlines drawn for people, and the image files of an analysis.

The drawing half of the explanations (the computing half is `skinlesion.explain`):
colour maps, maps placed back on the image, blends, the outline. And the one owner of an
analysis' file names (`{id}_{kind}.{ext}`, `{id}.upload`) and of their removal.
Everything is drawn at the analysed image's size (at most `analysis.ANALYSIS_MAX_SIDE`),
which is also the largest size the page shows.
"""
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from .imageio import downscale

GRADCAM_COLORMAP = "viridis"  # perceptually uniform: equal steps of the map look equal
SALIENCY_COLORMAP = "inferno"
EDGE_FADE = 0.15  # share of the crop's side over which a map fades out towards its edge
SALIENCY_WORK_SIDE = 256  # the saliency map is smoothed at this size: it is blurred anyway
THUMBNAIL_SIDE = 160  # History's small picture of each analysis (the outline drawn)
EMPTY_MAP_EPSILON = 1e-8  # a map whose maximum is below this has no evidence to show


@dataclass(frozen=True)
class ImageKind:
    caption: str  # "{prediction}" is replaced by the shown diagnosis
    figure: bool = True  # shown as a figure on the result page
    colormap: str | None = None  # an explanation map, drawn in this colour map
    suffix: str | None = None  # a fixed file type; else the configured overlay format


# Every image an analysis has, in the result page's order.
IMAGE_KINDS = {
    "original": ImageKind("Original"),
    "contour": ImageKind("Lesion outline (U-Net)"),
    "gradcam": ImageKind("Grad-CAM: regions that raised “{prediction}”", colormap=GRADCAM_COLORMAP),
    "saliency": ImageKind("Saliency (SmoothGrad): pixels the score is most sensitive to", colormap=SALIENCY_COLORMAP),
    "crop": ImageKind("What the classifier saw"),
    "mask": ImageKind("Lesion mask (U-Net)", figure=False, suffix="png"),
    "thumb": ImageKind("Thumbnail with the outline", figure=False),
}


class EncodingError(ValueError):
    """An image could not be encoded (not a storage problem)."""


# --- maps placed and drawn -------------------------------------------------------------

def edge_fade(height, width, fade=EDGE_FADE):
    """A window that is 1 inside and falls smoothly to 0 at the edges (smoothstep), so a map
    computed on a crop does not end in a hard rectangle on the whole image."""
    def ramp(n):
        distance = np.minimum(np.arange(n) + 0.5, n - np.arange(n) - 0.5) / max(1.0, fade * n)
        x = np.clip(distance, 0.0, 1.0)
        return x * x * (3 - 2 * x)
    return np.outer(ramp(height), ramp(width)).astype(np.float32)


def place_in_image(heat, box, height, width):
    """Put a map computed on the crop `box` back into a (height, width) frame, fading out
    towards the crop's edges."""
    if box is None:
        return cv2.resize(heat, (width, height), interpolation=cv2.INTER_LINEAR)
    top, bottom, left, right = box
    frame = np.zeros((height, width), np.float32)
    resized = cv2.resize(heat, (right - left, bottom - top), interpolation=cv2.INTER_LINEAR)
    frame[top:bottom, left:right] = resized * edge_fade(bottom - top, right - left)
    return frame


def legible_saliency(heat, mask=None, percentile=99.0, work_side=SALIENCY_WORK_SIDE):
    """A saliency map made readable: smoothed (pixel gradients are speckle), kept to the
    lesion and a margin around it, and scaled so that its top 1% is full strength rather
    than a few extreme pixels setting the scale and leaving the rest a dark wash. The
    smoothing is done at `work_side` (its blur is wider than a pixel there) and the result
    resized back: the same picture for a fraction of the work on a large image."""
    height, width = heat.shape
    small = downscale(heat.astype(np.float32), work_side)
    small_h, small_w = small.shape
    shrunk = (small_h, small_w) != (height, width)
    sigma = max(1.0, max(small_h, small_w) / 100.0)
    small = cv2.GaussianBlur(small.astype(np.float32), (0, 0), sigma)
    if mask is not None and mask.any():
        region = (cv2.resize(mask.astype(np.uint8), (small_w, small_h), interpolation=cv2.INTER_NEAREST)
                  if shrunk else mask)
        margin = max(3, int(0.03 * max(small_h, small_w)))
        grown = cv2.dilate(region.astype(np.uint8), np.ones((2 * margin + 1,) * 2, np.uint8))
        small = small * cv2.GaussianBlur(grown.astype(np.float32), (0, 0), margin / 2)
    positive = small[small > EMPTY_MAP_EPSILON]
    if positive.size == 0:
        return np.zeros((height, width), np.float32)
    small = np.clip(small / np.percentile(positive, percentile), 0.0, 1.0)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR) if shrunk else small


@lru_cache(maxsize=8)
def _lookup_table(colormap):
    """256 RGB entries of a matplotlib colormap, shaped for cv2.LUT: indexing beats calling
    it per pixel."""
    from matplotlib import colormaps
    return (colormaps[colormap](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)[:, None, :]


@lru_cache(maxsize=8)
def _opacity_table(alpha):
    # Opacity grows with the square root of the map, so weak evidence still shows a tint.
    return (alpha * np.sqrt(np.arange(256) / 255.0)).astype(np.float32)


def overlay(image, heat, colormap=GRADCAM_COLORMAP, alpha=0.45):
    """Blend a map (at the image's size) over an RGB uint8 image; cold areas stay visible."""
    levels = cv2.convertScaleAbs(np.clip(heat, 0.0, 1.0).astype(np.float32), alpha=255)
    colored = cv2.LUT(cv2.merge([levels, levels, levels]), _lookup_table(colormap))
    opacity = cv2.LUT(levels, _opacity_table(alpha))
    return cv2.blendLinear(np.ascontiguousarray(image), colored, 1.0 - opacity, opacity)


def contour_overlay(image, mask, color=(0, 255, 0), thickness=None):
    """The image with the mask's outline drawn on it (line width scales with size)."""
    thickness = thickness or max(1, round(max(image.shape[:2]) / 300))
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    drawn = image.copy()
    cv2.drawContours(drawn, contours, -1, color, thickness)
    return drawn


def render(analysis):
    """kind -> RGB array (or the boolean mask) of every image of an analysis: the
    original, the outline, the classifier's input, the thumbnail and the two explanations,
    each at the analysed image's size (except the crop and the thumbnail)."""
    image, mask = analysis.image, analysis.mask
    height, width = image.shape[:2]
    contour = contour_overlay(image, mask)
    images = {"original": image, "contour": contour, "crop": analysis.classifier_input,
              "mask": mask, "thumb": downscale(contour, THUMBNAIL_SIDE)}
    if analysis.gradcam is not None:
        heat = place_in_image(analysis.gradcam, analysis.region_box, height, width)
        images["gradcam"] = overlay(image, heat, GRADCAM_COLORMAP)
    if analysis.saliency is not None:
        heat = legible_saliency(place_in_image(analysis.saliency, analysis.region_box, height, width),
                                mask if analysis.lesion_found else None)
        images["saliency"] = overlay(image, heat, SALIENCY_COLORMAP, alpha=0.7)
    return images


# --- encoding ---------------------------------------------------------------------------

def encode(image, suffix, quality=90):
    """An RGB array (or a boolean mask, as 0/255 PNG) as file bytes. Raises EncodingError."""
    suffix = suffix.lower().lstrip(".")
    if image.dtype == bool:
        image = np.where(image, 255, 0).astype(np.uint8)
    params = {"jpg": [cv2.IMWRITE_JPEG_QUALITY, quality], "jpeg": [cv2.IMWRITE_JPEG_QUALITY, quality],
              "webp": [cv2.IMWRITE_WEBP_QUALITY, quality]}.get(suffix, [])
    pixels = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    try:
        encoded, data = cv2.imencode(f".{suffix}", pixels, params)
    except cv2.error as error:
        raise EncodingError(f".{suffix}: {error.err or error}") from None
    if not encoded:
        raise EncodingError(f"the .{suffix} encoder refused a {image.shape[1]}x{image.shape[0]} image")
    return data.tobytes()


def save_rgb(image, folder, name, quality=90):
    """Write an RGB array into `folder` as `name` (.jpg/.png/.webp by suffix). Returns the path.

    Encoding and writing are separate steps so that their failures cannot be mistaken
    for each other: EncodingError for an image the format cannot hold, OSError for a
    disk that is full or not writable.
    """
    path = Path(folder) / name
    try:
        data = encode(image, path.suffix, quality)
    except EncodingError as error:
        raise EncodingError(f"{name}: {error}") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def save_mask_png(mask, path):
    """Write a boolean mask as a 0/255 single-channel PNG."""
    Path(path).write_bytes(encode(np.asarray(mask, bool), ".png"))


def encoded_images(analysis, image_format="jpg"):
    """kind -> file bytes of every image of an analysis (the mask as PNG, the others in
    `image_format`). Raises EncodingError naming the image that could not be encoded."""
    encoded = {}
    for kind, image in render(analysis).items():
        suffix = IMAGE_KINDS[kind].suffix or image_format
        try:
            encoded[kind] = encode(image, suffix)
        except EncodingError as error:
            raise EncodingError(f"{kind} image: {error}") from None
    return encoded
