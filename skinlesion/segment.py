"""Lesion segmentation with the U-Net: mask at the image's own size, box, plausibility."""
from dataclasses import dataclass, field

import cv2
import numpy as np

from .flips import tta_views
from .inputs import segmenter_input
from .layer_names import SEGMENTER_OUTPUT
from .preprocess import preprocess
from .runtime import ModelSpec

MIN_AREA_FRACTION = 0.005  # smaller than this is noise, not a lesion we can measure
MAX_AREA_FRACTION = 0.98  # a mask covering the whole frame found no boundary
# An outline is found but its measurements cannot be trusted when (each measured on HAM10000's
# validation lesions against their drawn masks, docs/evaluation/unet/outline_checks.md):
EDGE_SHARE = 0.15  # this share of its border runs along the image's edge (the lesion goes on)
LARGE_AREA_FRACTION = 0.70  # it covers this much of the frame
SECOND_REGION_SHARE = 0.25  # another region at least this share of the outlined one's area
MIN_FLIP_AGREEMENT = 0.80  # a flipped view's mask overlaps the outline less (Jaccard)


@dataclass
class Segmentation:
    mask: np.ndarray  # bool, (H, W) of the input image: the U-Net on the image as it is
    found: bool
    reason: str  # why nothing was found, "" when found
    outline: np.ndarray | None = None  # the same from the map averaged over the flips
    outline_problems: list = field(default_factory=list)  # why the measurements are unreliable

    def __post_init__(self):
        if self.outline is None:  # one view only: the outline is the mask
            self.outline = self.mask


def clean_mask(mask):
    """Keep the largest connected region and fill its holes (one lesion per image)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return np.zeros_like(mask, dtype=bool)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    region = (labels == largest).astype(np.uint8)
    contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros_like(region)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    return filled.astype(bool)


def probability_to_mask(probability, height, width, threshold=0.5):
    """U-Net probability map -> cleaned boolean mask at (height, width)."""
    resized = cv2.resize(probability.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    return clean_mask(resized > threshold)


def describe_mask(mask):
    area_fraction = float(mask.mean())
    if area_fraction < MIN_AREA_FRACTION:
        return Segmentation(mask, False, "No lesion was found in the image.")
    if area_fraction > MAX_AREA_FRACTION:
        return Segmentation(mask, False, "The lesion fills the whole frame: its border could "
                            "not be found.")
    return Segmentation(mask, True, "")


def outline_problems(outline, view_masks, raw_mask):
    """Reasons, in words, why a found outline and its measurements are unreliable (none: [])."""
    problems = []
    border = np.zeros_like(outline)
    border[0, :] = border[-1, :] = border[:, 0] = border[:, -1] = True
    edge = cv2.morphologyEx(outline.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    edge_pixels = max(1, int((edge & outline).sum()))
    if (outline & border).sum() / edge_pixels >= EDGE_SHARE:
        problems.append("the outline runs along the image's edge, so the lesion may continue beyond it")
    if outline.mean() >= LARGE_AREA_FRACTION:
        problems.append(f"the outline covers {outline.mean() * 100:.0f}% of the image")
    count, _, stats, _ = cv2.connectedComponentsWithStats(raw_mask.astype(np.uint8), connectivity=8)
    areas = sorted(stats[1:, cv2.CC_STAT_AREA], reverse=True)
    if len(areas) > 1 and areas[1] >= SECOND_REGION_SHARE * areas[0]:
        problems.append(f"the U-Net found {sum(a >= SECOND_REGION_SHARE * areas[0] for a in areas)} separate "
                        "regions and only the largest is outlined")
    agreement = min((jaccard(view, outline) for view in view_masks), default=1.0)
    if agreement < MIN_FLIP_AGREEMENT:
        problems.append("the outline changes when the image is flipped (overlap "
                        f"{agreement * 100:.0f}%)")
    return problems


def jaccard(a, b):
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def load_segmenter(model_path, runtime=None):
    """A Segmenter from a model file checked against its card, run by `runtime` (default the
    serving runtime, LiteRT; "keras" for a model not exported yet)."""
    from .runtime import SERVING_RUNTIME, load_graphs
    return Segmenter(load_graphs(model_path, runtime or SERVING_RUNTIME))


class Segmenter:
    """A U-Net's graphs (skinlesion.runtime) with its card; fixed input shape."""

    def __init__(self, graphs):
        self.graphs = graphs
        self.card = card = graphs.card
        spec = ModelSpec.from_card(card)
        self.input_shape = (spec.input_height, spec.input_width)
        self.steps = spec.preprocessing
        # flip4: the outline that is shown and measured comes from the map averaged over the
        # image and its three flips, so it does not depend on which way up the photograph is.
        # The classifier's crop keeps the single-view mask its figures were validated with
        # (averaging moved them: HAM10000 7-class balanced accuracy 0.747 -> 0.738).
        self.test_time_augmentation = spec.test_time_augmentation

    def view_maps(self, preprocessed_images):
        """(views, N, H, W) probability maps at U-Net size, each flipped back; the first view
        is the image as it is."""
        batch = np.stack([segmenter_input(image, self.input_shape) for image in preprocessed_images])
        views = tta_views(batch.astype(np.float32), self.test_time_augmentation)
        maps = self.graphs.run(views)[SEGMENTER_OUTPUT][..., 0].reshape(-1, len(batch), *self.input_shape)
        if len(maps) == 4:
            maps = np.stack([maps[0], maps[1][:, :, ::-1], maps[2][:, ::-1], maps[3][:, ::-1, ::-1]])
        return maps

    def probability(self, preprocessed_images):
        """Batch of preprocessed uint8 images -> probability maps of the images as they are."""
        return self.view_maps(preprocessed_images)[0]

    def segment_image(self, image):
        """An RGB image as decoded: preprocessed by this U-Net's steps, then segmented."""
        return self(preprocess(image, self.steps))

    def __call__(self, preprocessed_image):
        maps = self.view_maps([preprocessed_image])[:, 0]
        height, width = preprocessed_image.shape[:2]
        segmentation = describe_mask(probability_to_mask(maps[0], height, width))
        averaged = maps.mean(axis=0)
        segmentation.outline = (probability_to_mask(averaged, height, width) if len(maps) > 1
                                else segmentation.mask)
        if segmentation.found:
            views = [probability_to_mask(view, height, width) for view in maps]
            raw = cv2.resize(averaged.astype(np.float32), (width, height)) > 0.5
            segmentation.outline_problems = outline_problems(segmentation.outline, views, raw)
        return segmentation
