"""Image preprocessing as named, configurable steps.

`preprocess(image, steps)` is the one function that prepares an RGB image for the
models. Training (training/datasets.py) and serving (skinlesion/analysis.py) both
call it, so a model never sees at serving time an image prepared differently from
the ones it was trained on. Every step maps uint8 RGB to uint8 RGB of the same size.
"""
import cv2
import numpy as np


def remove_hair(image, kernel_size=9, threshold=12):
    """DullRazor-style: find thin dark strands with a black-hat filter, inpaint them."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kernel_size, kernel_size))
    blackhat = cv2.morphologyEx(gray, cv2.MORPH_BLACKHAT, kernel)
    _, hair = cv2.threshold(blackhat, threshold, 255, cv2.THRESH_BINARY)
    if not hair.any():
        return image
    return cv2.inpaint(image, hair, 3, cv2.INPAINT_TELEA)


def denoise(image, strength=5):
    """Edge-preserving noise reduction (non-local means on colour)."""
    return cv2.fastNlMeansDenoisingColored(image, None, strength, strength, 7, 21)


def sharpen(image, amount=0.6, sigma=1.5):
    """Unsharp mask: add back a share of the detail a Gaussian blur removes."""
    blurred = cv2.GaussianBlur(image, (0, 0), sigma)
    return cv2.addWeighted(image, 1.0 + amount, blurred, -amount, 0)


def enhance_contrast(image, clip_limit=2.0, tiles=8):
    """CLAHE on the L channel of Lab, so hue is not shifted."""
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)
    clahe = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(tiles, tiles))
    lab[..., 0] = clahe.apply(lab[..., 0])
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


def shades_of_gray(image, power=6):
    """Shades of Gray colour constancy (Finlayson & Trezzi 2004).

    Estimates the illuminant as the Minkowski p-norm mean of each channel and
    rescales channels so it becomes neutral grey: different cameras and lamps
    then give the models more similar colours.

    Both steps work on the 256 levels rather than the pixels: the p-norm mean from each
    channel's histogram (the same sum, grouped by value) and the gains as a lookup table,
    so the cost barely grows with the image's size.
    """
    levels = np.arange(256, dtype=np.float64)
    counts = [cv2.calcHist([image], [channel], None, [256], [0, 256]).ravel().astype(np.float64)
              for channel in range(3)]
    pixels = image.shape[0] * image.shape[1]
    illuminant = np.array([np.power((count * levels ** power).sum() / pixels, 1.0 / power)
                           for count in counts], np.float32)
    illuminant = illuminant / max(float(np.linalg.norm(illuminant)), 1e-6)
    gains = 1.0 / (illuminant * np.sqrt(3.0) + 1e-6)
    tables = np.clip(levels.astype(np.float32)[:, None] * gains[None, :], 0, 255).astype(np.uint8)
    return cv2.LUT(np.ascontiguousarray(image), tables[:, None, :])


# The steps, in the order they are applied whatever order a caller lists them in: hair is
# removed before denoising smears it, and colour is normalised last, on the cleaned image.
STEPS = {
    "hair_removal": remove_hair,
    "denoise": denoise,
    "sharpen": sharpen,
    "contrast": enhance_contrast,
    "color_constancy": shades_of_gray,
}
STEP_ORDER = tuple(STEPS)

# The default for new models; a model's card records the steps it was trained with and
# serving uses the card's list, not this one. Chosen on the validation split (docs/models.md).
DEFAULT_STEPS = ("color_constancy",)


def parse_steps(text):
    """'hair_removal,color_constancy' or 'none' -> a validated tuple of step names."""
    if text is None or text.strip().lower() in ("", "none"):
        return ()
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in STEPS]
    if unknown:
        raise ValueError(f"Unknown preprocessing step(s) {unknown}; choose from {list(STEP_ORDER)}.")
    return names


def preprocess(image, steps=DEFAULT_STEPS):
    """Apply the named steps to an (H, W, 3) uint8 RGB image; returns a new array."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError("preprocess expects an (H, W, 3) uint8 RGB array.")
    unknown = set(steps) - set(STEPS)
    if unknown:
        raise ValueError(f"Unknown preprocessing step(s) {sorted(unknown)}.")
    result = np.ascontiguousarray(image)
    for name in STEPS:
        if name in steps:
            result = STEPS[name](result)
    return result
