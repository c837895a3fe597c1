"""Geometry shared by training and serving: model inputs, lesion boxes, crops."""
import cv2
import numpy as np

CROP_MODES = ("full", "crop", "masked")


def resize_rgb(image, height, width):
    """Resize an RGB uint8 image; area interpolation when shrinking avoids aliasing."""
    shrinking = height * width < image.shape[0] * image.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


def resize_mask(mask, height, width):
    """Nearest-neighbour resize of a boolean mask."""
    resized = cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
    return resized.astype(bool)


def lesion_box(mask, margin=0.15):
    """Square box around the mask's pixels, grown by `margin` of its side, kept in the image.

    Returns (top, bottom, left, right) or None for an empty mask.
    """
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    height, width = mask.shape
    center_y = (rows[0] + rows[-1] + 1) / 2.0
    center_x = (cols[0] + cols[-1] + 1) / 2.0
    side = max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) * (1.0 + 2.0 * margin)
    side = min(max(side, 32.0), float(max(height, width)))
    half_h, half_w = min(side, height) / 2.0, min(side, width) / 2.0
    center_y = min(max(center_y, half_h), height - half_h)
    center_x = min(max(center_x, half_w), width - half_w)
    top, left = int(round(center_y - half_h)), int(round(center_x - half_w))
    return top, top + int(round(2 * half_h)), left, left + int(round(2 * half_w))


def skin_colour(image, mask):
    """The median colour of the pixels outside the mask (uint8 RGB; mid-grey when there are
    none), as np.median gives it, read from each channel's histogram instead of sorting
    every pixel."""
    outside = (~mask).astype(np.uint8)
    count = int(outside.sum())
    if count == 0:
        return np.full(3, 128, np.uint8)
    medians = []
    for channel in range(3):
        cumulative = np.cumsum(cv2.calcHist([image], [channel], outside, [256], [0, 256]).ravel())
        lower, upper = np.searchsorted(cumulative, [(count - 1) // 2 + 1, count // 2 + 1])
        medians.append((lower + upper) / 2.0)
    return np.array(medians).astype(np.uint8)


def classifier_region(image, mask, mode):
    """The part of the image the classifier sees (before resizing), by crop mode.

    full: the whole image. crop: the lesion's box. masked: the box, with the skin outside
    the (dilated) mask set to the image's median skin colour. An empty or missing mask
    falls back to the whole image; a mask of another size is resized to the image.
    """
    if mode not in CROP_MODES:
        raise ValueError(f"Unknown crop mode {mode!r}; choose from {CROP_MODES}.")
    if mask is not None and mask.shape != image.shape[:2]:
        mask = resize_mask(mask, *image.shape[:2])
    box = None if mask is None or mode == "full" else lesion_box(mask)
    if box is None:
        return image
    top, bottom, left, right = box
    region = image[top:bottom, left:right]
    if mode == "masked":
        kernel = np.ones((7, 7), np.uint8)
        keep = cv2.dilate(mask[top:bottom, left:right].astype(np.uint8), kernel).astype(bool)
        skin = skin_colour(image, mask)
        region = np.where(keep[..., None], region, skin)
    return np.ascontiguousarray(region)


def classifier_input(image, mask, mode, size):
    """(size, size, 3) uint8 array fed to the classifier."""
    return resize_rgb(classifier_region(image, mask, mode), size, size)
