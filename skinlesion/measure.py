"""Lesion measurements from a mask, in pixels (the image carries no physical scale).

Asymmetry, border irregularity and colour count follow the ABCD rule of dermoscopy;
they describe the mask the U-Net drew, so they are only as good as that mask.
"""
import cv2
import numpy as np

# Reference RGB colours of the ABCD rule's six dermoscopic colours.
DERMOSCOPIC_COLOURS = {
    "white": (235, 230, 225),
    "red": (190, 60, 60),
    "light brown": (180, 120, 80),
    "dark brown": (100, 60, 40),
    "blue-grey": (110, 120, 140),
    "black": (35, 30, 30),
}
COLOUR_MIN_SHARE = 0.05  # a colour counts when at least this share of the lesion has it
COLOUR_SAMPLE = 20_000
# Shape measures are taken on the lesion's outline at one fixed scale, smoothed, so that the
# image's size and the pixel-level raggedness of a mask do not move them.
MEASURE_SIDE = 256
SMOOTHING_SIGMA = 2.0  # pixels at MEASURE_SIDE


def _largest_contour(mask):
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    return max(contours, key=cv2.contourArea) if contours else None


def asymmetry(mask):
    """Share of the lesion that does not overlap its mirror image, worst of the two
    principal axes (0 = perfectly symmetric)."""
    ys, xs = np.nonzero(mask)
    if xs.size < 3:
        return 0.0
    points = np.stack([xs, ys], 1).astype(np.float32)
    center = points.mean(0)
    _, eigenvectors = np.linalg.eigh(np.cov((points - center).T))
    aligned = (points - center) @ eigenvectors  # coordinates along the principal axes
    extent = int(np.ceil(np.abs(aligned).max())) + 2
    grid = np.zeros((2 * extent + 1, 2 * extent + 1), bool)
    cells = np.round(aligned).astype(int) + extent
    grid[cells[:, 1], cells[:, 0]] = True
    grid = cv2.morphologyEx(grid.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8)).astype(bool)
    area = grid.sum()
    scores = [np.logical_xor(grid, np.flip(grid, axis)).sum() / (2.0 * area) for axis in (0, 1)]
    return float(max(scores))


def border_irregularity(contour, area):
    """Compactness: perimeter^2 / (4 pi area); 1.0 for a circle, larger when ragged."""
    perimeter = cv2.arcLength(contour, True)
    return float(perimeter ** 2 / (4 * np.pi * max(area, 1.0)))


def colour_count(image, mask):
    """How many of the six dermoscopic colours cover at least 5% of the lesion."""
    pixels = image[mask]
    if pixels.size == 0:
        return 0, []
    # Shares of six colours need no more than ~20,000 evenly spread pixels.
    pixels = pixels[:: max(1, len(pixels) // COLOUR_SAMPLE)].astype(np.float32)
    references = np.array(list(DERMOSCOPIC_COLOURS.values()), np.float32)
    # Nearest reference by squared distance |p|^2 - 2 p.r + |r|^2; |p|^2 is the same for every
    # reference, so one matrix product ranks them (no (pixels, 6, 3) array).
    nearest = np.argmin((references ** 2).sum(1) - 2.0 * pixels @ references.T, axis=1)
    shares = np.bincount(nearest, minlength=len(references)) / len(pixels)
    present = [name for name, share in zip(DERMOSCOPIC_COLOURS, shares) if share >= COLOUR_MIN_SHARE]
    return len(present), present


def normalised_outline(contour, shape):
    """The lesion (one contour) filled, cut to its box, scaled so that its longer side is
    MEASURE_SIDE, and smoothed: the shape that asymmetry and border are measured on."""
    filled = np.zeros(shape[:2], np.uint8)
    cv2.drawContours(filled, [contour], -1, 1, thickness=-1)
    x, y, w, h = cv2.boundingRect(contour)
    scale = MEASURE_SIDE / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    resized = cv2.resize(filled[y:y + h, x:x + w].astype(np.float32), size, interpolation=cv2.INTER_AREA)
    margin = int(4 * SMOOTHING_SIGMA) + 2
    padded = np.pad(resized, margin)
    smooth = cv2.GaussianBlur(padded, (0, 0), SMOOTHING_SIGMA) > 0.5
    # A lesion a few pixels thick (a sliver the U-Net drew along an edge) vanishes when
    # smoothed; it is measured unsmoothed rather than not at all.
    return smooth if smooth.any() else padded > 0


def measure_lesion(image, mask):
    """Measurements of a non-empty boolean mask on its RGB image (same size)."""
    contour = _largest_contour(mask)
    if contour is None:
        return None
    outline = normalised_outline(contour, mask.shape)
    outline_contour = _largest_contour(outline)
    area = float(mask.sum())
    (_, _), (box_w, box_h), _ = cv2.minAreaRect(contour)
    hull = cv2.convexHull(contour)[:, 0, :].astype(np.float32)
    distances = np.sqrt(((hull[:, None, :] - hull[None]) ** 2).sum(-1))
    colours, colour_names = colour_count(image, mask)
    return {
        "area_px": int(area),
        "area_fraction": round(area / mask.size, 4),
        "max_diameter_px": round(float(distances.max()), 1),
        "equivalent_diameter_px": round(float(np.sqrt(4 * area / np.pi)), 1),
        "min_box_px": [round(float(min(box_w, box_h)), 1), round(float(max(box_w, box_h)), 1)],
        "asymmetry": round(asymmetry(outline), 3),
        "border_irregularity": round(border_irregularity(outline_contour, float(outline.sum())), 3),
        "colour_count": colours,
        "colours": colour_names,
    }


SHAPE_MEASURES = {"area_px": "Area (px)", "max_diameter_px": "Largest diameter (px)",
                  "asymmetry": "Asymmetry", "border_irregularity": "Border irregularity",
                  "colour_count": "Colours"}
# With a physical scale for both visits (skinlesion.scale), sizes are compared in mm; the
# visit noise of a size is relative, so it holds in either unit.
IN_MILLIMETRES = {"area_px": ("area_mm2", "Area (mm²)"), "max_diameter_px": ("max_diameter_mm", "Largest diameter (mm)")}


def compare_measurements(earlier, later, noise=None):
    """Rows for two visits' lesion summaries' measurements: values, change, relative change,
    and whether the change is within `noise` (the segmenter card's measurement_noise.visit_noise:
    relative for sizes and border, absolute for asymmetry); [] when either visit has no
    outline, or one the segmenter judged unreliable (its outline_problems)."""
    if not earlier or not later or earlier.get("outline_problems") or later.get("outline_problems"):
        return []
    earlier, later = earlier.get("measurements"), later.get("measurements")
    if not earlier or not later:
        return []
    rows = []
    millimetres = bool(earlier.get("scale") and later.get("scale"))
    for noise_key, label in SHAPE_MEASURES.items():
        key, label = IN_MILLIMETRES[noise_key] if millimetres and noise_key in IN_MILLIMETRES else (noise_key, label)
        before, after = earlier.get(key), later.get(key)
        if before is None or after is None:
            continue
        change = after - before
        relative = change / before if before else None
        limit = (noise or {}).get(noise_key)
        size = abs(change) if key == "asymmetry" else (abs(relative) if relative is not None else None)
        rows.append({"key": key, "label": label, "earlier": before, "later": after, "change": change,
                     "relative": relative, "noise": limit,
                     "within_noise": None if limit is None or size is None else size <= limit})
    return rows
