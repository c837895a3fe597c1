"""Explanations of a classifier's decision: Grad-CAM and saliency, from the model's graphs.

Both are taken from the logits (the Dense layer `models.LOGITS_LAYER`), not from the
softmax: the softmax gradient of a confident prediction vanishes and would explain nothing.

Every classifier ends in global average pooling and a Dense layer, so the gradient of a
logit with respect to the last convolutional maps is the Dense kernel over the map's area,
whatever the image: Grad-CAM's channel weights need no gradient graph. The forward graph
returns each member's class activation maps (the maps times that kernel: skinlesion.graphs),
and Grad-CAM is the map of the explained class; for an average of classifiers, whose logits
are the log of the members' mean probabilities, each member's maps are weighted by the
derivative of the average's logit with respect to the member's logits (below, in numpy) and
summed. The saliency map is the gradient of the logit with respect to the input, which the
model's saliency graph computes. One forward pass over all test-time views returns the
probabilities, the Grad-CAM and the pooled features together. Drawing the maps is
`skinlesion.overlays`' job.
"""
import cv2
import numpy as np

from .layer_names import LOGITS_LAYER, POOLED_LAYER
from .overlays import EMPTY_MAP_EPSILON


def normalise(heat):
    """Scale a non-negative map to [0, 1]; an all-zero (or non-finite) map stays zero."""
    heat = np.nan_to_num(np.asarray(heat, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    heat = np.maximum(heat, 0.0)
    top = float(heat.max()) if heat.size else 0.0
    if top <= EMPTY_MAP_EPSILON:
        return np.zeros_like(heat)
    return heat / top


def softmax(logits, axis=-1):
    shifted = np.asarray(logits, np.float64) - np.max(logits, axis=axis, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(axis=axis, keepdims=True)


def member_weights(member_logits, members, class_index):
    """(members, classes): d(the average's logit of class_index) / d(each member's logits), where
    the average's logits are log(mean_m softmax(z_m)): s_mc (delta_cj - s_mj) / (M mean_m s_mc)."""
    member_probabilities = softmax(np.asarray(member_logits, np.float64).reshape(members, -1))
    own = member_probabilities[:, class_index]
    change = -own[:, None] * member_probabilities
    change[:, class_index] += own
    return change / (members * max(own.mean(), 1e-30))


def grad_cam(outputs, members, class_index, view=0):
    """The Grad-CAM of `class_index` for one row of a forward pass, before the ReLU, on the
    largest member's grid (a smaller member's map resized bilinearly to it)."""
    maps = [outputs[f"class_maps_{member}"][view] for member in range(members)]
    grid = max(m.shape[:2] for m in maps)
    if members == 1:
        weights = np.eye(maps[0].shape[-1])[class_index][None]
    else:
        weights = member_weights(outputs["member_logits"][view], members, class_index)
    cam = np.zeros(grid, np.float64)
    for member_maps, member_weight in zip(maps, weights):
        evidence = (member_maps.astype(np.float64) * member_weight).sum(-1)
        if evidence.shape != grid:
            evidence = cv2.resize(evidence, grid[::-1], interpolation=cv2.INTER_LINEAR)
        cam += evidence
    return cam.astype(np.float32)


class Explainer:
    """Probabilities, Grad-CAM and saliency of one classifier from its graphs (skinlesion.runtime)."""

    def __init__(self, graphs, smoothgrad_samples=1, smoothgrad_noise=0.1, temperature=1.0):
        self.graphs = graphs
        self.temperature = float(temperature)  # calibration: probabilities = softmax(logits / T)
        size = graphs.card["input_size"]
        self.input_shape = (int(size["height"]), int(size["width"]))
        # One noisy copy by default: the page smooths the map over the lesion anyway
        # (overlays.legible_saliency), and each copy costs a forward and a backward pass
        # through the whole network, the dearest step of an analysis (docs/performance.md).
        self.smoothgrad_samples = int(smoothgrad_samples)
        self.smoothgrad_noise = float(smoothgrad_noise)
        self._noise = np.random.default_rng()

    def explain(self, image, class_index=None, saliency=True, views=None, others=None):
        """image: (H, W, 3) uint8 at the model's input size. views: optional (V, H, W, 3)
        batch starting with the image (test-time views); probabilities are their mean.
        others: optional (N, H, W, 3) images whose pooled features are wanted too, taken in
        the same pass (such as the whole photograph the dermoscopy gate reads).

        Returns a dict: probabilities, features (the pooled features, averaged over the
        views), class_index, gradcam and saliency maps (float32 in [0, 1] at the input
        size), gradcam_empty when the Grad-CAM had no positive evidence (the map is then
        all zero, not noise scaled up), and other_features (N, features).
        """
        views = np.asarray(image, np.float32)[None] if views is None else np.asarray(views, np.float32)
        others = (np.zeros((0, *self.input_shape, 3), np.float32) if others is None
                  else np.asarray(others, np.float32))
        count = len(views)
        outputs = self.graphs.run(np.concatenate([views, others]))
        logits = outputs[LOGITS_LAYER][:count]
        probabilities = softmax(logits / self.temperature).mean(0).astype(np.float32)
        index = int(np.argmax(probabilities)) if class_index is None else int(class_index)
        cam = np.maximum(grad_cam(outputs, self.graphs.members, index), 0.0)
        pooled = outputs[POOLED_LAYER]
        result = {"probabilities": probabilities, "features": pooled[:count].mean(0),
                  "class_index": index, "gradcam_empty": bool(cam.max() <= EMPTY_MAP_EPSILON),
                  "other_features": pooled[count:]}
        result["gradcam"] = normalise(cv2.resize(cam, self.input_shape[::-1], interpolation=cv2.INTER_LINEAR))
        if saliency:
            result["saliency"] = self.saliency(image, index)
        return result

    def saliency(self, image, class_index):
        """The saliency map of `class_index` for one (H, W, 3) image, in [0, 1]: SmoothGrad,
        the gradient's largest channel averaged over noisy copies of the image."""
        image = np.asarray(image, np.float32)
        total = np.zeros(self.input_shape, np.float64)
        for _ in range(self.smoothgrad_samples):
            noisy = image + self._noise.normal(0.0, self.smoothgrad_noise * 255.0, image.shape).astype(np.float32)
            total += self.graphs.input_gradient(noisy, class_index)[0]
        return normalise(total / max(self.smoothgrad_samples, 1))
