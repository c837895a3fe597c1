"""The explanation API under the name the product's layout gives it.

The code lives in the analysis core: `skinlesion.explain` computes Grad-CAM and saliency
from a model's graphs (LiteRT when serving), `skinlesion.overlays` draws them and writes an
analysis' image files.
"""
from skinlesion.explain import Explainer, grad_cam, normalise
from skinlesion.overlays import (GRADCAM_COLORMAP, SALIENCY_COLORMAP, EncodingError, edge_fade,
                                 legible_saliency, overlay, place_in_image, render, save_rgb)

__all__ = ["Explainer", "grad_cam", "normalise", "GRADCAM_COLORMAP", "SALIENCY_COLORMAP",
           "EncodingError", "edge_fade", "legible_saliency", "overlay", "place_in_image", "render",
           "save_rgb"]
