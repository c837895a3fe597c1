"""Explanations of a classifier's decision: Grad-CAM and a SmoothGrad saliency map.

Both are taken from the logits (the Dense layer "logits"), not from the softmax: the
softmax gradient of a confident prediction vanishes and would explain nothing.

`Explainer(model)` builds its gradient model and compiled functions once; each call
runs one forward pass (over all test-time views) that returns the probabilities and the
Grad-CAM together, so the classifier is not run twice per image. Overlays are drawn with
`matplotlib.colormaps`, blended on the original image at its own size, and written
to whatever folder the caller chooses.
"""
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

LOGITS_LAYER = "logits"
LAST_CONV_CANDIDATES = ("out_relu", "last_conv")
EMPTY_MAP_EPSILON = 1e-8


def last_conv_layer(model):
    names = {layer.name for layer in model.layers}
    for name in LAST_CONV_CANDIDATES:
        if name in names:
            return model.get_layer(name)
    raise ValueError("The classifier has no known last convolutional layer "
                     f"({', '.join(LAST_CONV_CANDIDATES)}): build it with skinlesion.models.")


class Explainer:
    """Probabilities, Grad-CAM and saliency for one flat functional classifier."""

    def __init__(self, model, smoothgrad_samples=2, smoothgrad_noise=0.1, temperature=1.0):
        import keras
        import tensorflow as tf
        self.model = model
        self.temperature = float(temperature)  # calibration: probabilities = softmax(logits / T)
        size = model.input_shape[1:3]
        self.input_shape = (int(size[0]), int(size[1]))
        # Built once per model, never per request.
        self._grad_model = keras.Model(model.inputs,
                                       [last_conv_layer(model).output, model.get_layer(LOGITS_LAYER).output])
        # Two noisy copies keep the map smoother than a plain gradient for a quarter of the
        # cost of the usual 8-16 (docs/performance.md).
        self.smoothgrad_samples = int(smoothgrad_samples)
        self.smoothgrad_noise = float(smoothgrad_noise)
        image_spec = tf.TensorSpec((1, *self.input_shape, 3), tf.float32)
        views_spec = tf.TensorSpec((None, *self.input_shape, 3), tf.float32)
        index_spec = tf.TensorSpec((), tf.int32)
        self._cam = tf.function(self._probabilities_and_cam, input_signature=[views_spec, index_spec])
        self._saliency = tf.function(self._smoothgrad, input_signature=[image_spec, index_spec])

    def _probabilities_and_cam(self, views, class_index):
        """One forward pass over the image's views (the image first): their mean softmax,
        and the Grad-CAM of the first view. The gradient only runs back through the
        pooling and Dense head to the last convolutional block, so it costs almost nothing
        beside the forward pass."""
        import tensorflow as tf
        with tf.GradientTape() as tape:
            features, logits = self._grad_model(views, training=False)
            probabilities = tf.reduce_mean(tf.nn.softmax(logits / self.temperature), axis=0)
            index = tf.where(class_index < 0, tf.cast(tf.argmax(probabilities), tf.int32), class_index)
            target = logits[0, index]
        gradients = tape.gradient(target, features)[:1]
        weights = tf.reduce_mean(gradients, axis=(1, 2))  # one weight per channel
        cam = tf.nn.relu(tf.reduce_sum(features[:1] * weights[:, None, None, :], axis=-1))[0]
        # The pooled features (the classifier head's input), averaged over the views: what
        # the unusual-image score measures.
        pooled = tf.reduce_mean(features, axis=(0, 1, 2))
        return probabilities, cam, index, pooled

    def _smoothgrad(self, image, class_index):
        import tensorflow as tf
        noise = tf.random.normal((self.smoothgrad_samples, *self.input_shape, 3),
                                 stddev=self.smoothgrad_noise * 255.0)
        noisy = tf.repeat(image, self.smoothgrad_samples, axis=0) + noise
        with tf.GradientTape() as tape:
            tape.watch(noisy)
            _, logits = self._grad_model(noisy, training=False)
            target = tf.reduce_sum(logits[:, class_index])
        gradients = tape.gradient(target, noisy)
        return tf.reduce_mean(tf.reduce_max(tf.abs(gradients), axis=-1), axis=0)

    def explain(self, image, class_index=None, saliency=True, views=None):
        """image: (H, W, 3) uint8 at the model's input size. views: optional (V, H, W, 3)
        batch starting with the image (test-time views); probabilities are their mean.

        Returns a dict: probabilities, features (the pooled features, averaged over the
        views), class_index, gradcam and saliency maps
        (float32 in [0, 1] at the input size), and gradcam_empty when the Grad-CAM had
        no positive evidence (the map is then all zero, not noise scaled up).
        """
        import tensorflow as tf
        batch = tf.constant(np.asarray(image, np.float32)[None])
        views = batch if views is None else tf.constant(np.asarray(views, np.float32))
        wanted = tf.constant(-1 if class_index is None else int(class_index), tf.int32)
        probabilities, cam, index, pooled = self._cam(views, wanted)
        cam = cam.numpy()
        result = {"probabilities": probabilities.numpy(), "features": pooled.numpy(),
                  "class_index": int(index), "gradcam_empty": bool(cam.max() <= EMPTY_MAP_EPSILON)}
        result["gradcam"] = normalise(cv2.resize(cam, self.input_shape[::-1],
                                                 interpolation=cv2.INTER_LINEAR))
        if saliency:
            smooth = self._saliency(batch, tf.constant(int(index), tf.int32)).numpy()
            result["saliency"] = normalise(smooth)
        return result


def normalise(heat):
    """Scale a non-negative map to [0, 1]; an all-zero (or non-finite) map stays zero."""
    heat = np.nan_to_num(np.asarray(heat, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    heat = np.maximum(heat, 0.0)
    top = float(heat.max()) if heat.size else 0.0
    if top <= EMPTY_MAP_EPSILON:
        return np.zeros_like(heat)
    return heat / top


GRADCAM_COLORMAP = "viridis"  # perceptually uniform: equal steps of the map look equal
SALIENCY_COLORMAP = "inferno"
EDGE_FADE = 0.15  # share of the crop's side over which a map fades out towards its edge


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


def legible_saliency(heat, mask=None, percentile=99.0):
    """A saliency map made readable: smoothed (pixel gradients are speckle), kept to the
    lesion and a margin around it, and scaled so that its top 1% is full strength rather
    than a few extreme pixels setting the scale and leaving the rest a dark wash."""
    height, width = heat.shape
    sigma = max(1.0, max(height, width) / 100.0)
    heat = cv2.GaussianBlur(heat.astype(np.float32), (0, 0), sigma)
    if mask is not None and mask.any():
        margin = max(3, int(0.03 * max(height, width)))
        grown = cv2.dilate(mask.astype(np.uint8), np.ones((2 * margin + 1,) * 2, np.uint8))
        heat = heat * cv2.GaussianBlur(grown.astype(np.float32), (0, 0), margin / 2)
    positive = heat[heat > EMPTY_MAP_EPSILON]
    if positive.size == 0:
        return np.zeros_like(heat)
    return np.clip(heat / np.percentile(positive, percentile), 0.0, 1.0)


@lru_cache(maxsize=8)
def _lookup_table(colormap):
    """256 RGB entries of a matplotlib colormap: indexing beats calling it per pixel."""
    from matplotlib import colormaps
    return (colormaps[colormap](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)


def _levels(heat):
    return np.round(np.clip(heat, 0.0, 1.0) * 255).astype(np.uint8)


def colorize(heat, colormap=GRADCAM_COLORMAP):
    """(H, W) map in [0, 1] -> (H, W, 3) uint8 RGB through a matplotlib colormap."""
    return _lookup_table(colormap)[_levels(heat)]


def overlay(image, heat, colormap=GRADCAM_COLORMAP, alpha=0.45):
    """Blend a map (at the image's size) over an RGB uint8 image; cold areas stay visible."""
    levels = _levels(heat)
    colored = _lookup_table(colormap)[levels]
    # Opacity grows with the square root of the map, so weak evidence still shows a tint.
    opacity = (alpha * np.sqrt(np.arange(256) / 255.0) * 256).astype(np.uint16)[levels][..., None]
    blended = (image.astype(np.uint16) * (256 - opacity) + colored.astype(np.uint16) * opacity) >> 8
    return blended.astype(np.uint8)


def save_rgb(image, folder, name, quality=90):
    """Write an RGB array into `folder` as `name` (.jpg/.png/.webp by suffix). Returns the path.

    Encoding and writing are separate steps so that their failures cannot be mistaken
    for each other: EncodingError for an image the format cannot hold, OSError for a
    disk that is full or not writable.
    """
    path = Path(folder) / name
    suffix = path.suffix.lower()
    params = {".jpg": [cv2.IMWRITE_JPEG_QUALITY, quality], ".jpeg": [cv2.IMWRITE_JPEG_QUALITY, quality],
              ".webp": [cv2.IMWRITE_WEBP_QUALITY, quality]}.get(suffix, [])
    try:
        encoded, data = cv2.imencode(suffix, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
    except cv2.error as error:
        raise EncodingError(f"{name}: {error.err or error}") from None
    if not encoded:
        raise EncodingError(f"{name}: the {suffix} encoder refused a {image.shape[1]}x{image.shape[0]} image")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.tobytes())
    return path


class EncodingError(ValueError):
    """An image could not be encoded (not a storage problem)."""
