"""Explanations of a classifier's decision, the TensorFlow part: Grad-CAM and saliency.

Both are taken from the logits (the Dense layer `models.LOGITS_LAYER`), not from the
softmax: the softmax gradient of a confident prediction vanishes and would explain nothing.

`Explainer(model)` builds its gradient model and compiled functions once; each call runs
one forward pass over all test-time views that returns the probabilities and the Grad-CAM
together, so the classifier is not run twice per image. Drawing the maps is
`skinlesion.overlays`' job.
"""
import cv2
import numpy as np

from .models import LAST_CONV_LAYERS, LOGITS_LAYER, member_last_conv_names
from .overlays import EMPTY_MAP_EPSILON


def last_conv_layer(model):
    names = {layer.name for layer in model.layers}
    for name in LAST_CONV_LAYERS:
        if name in names:
            return model.get_layer(name)
    raise ValueError("The classifier has no known last convolutional layer "
                     f"({', '.join(LAST_CONV_LAYERS)}): build it with skinlesion.models.")


def grad_cam_layers(model):
    """The maps Grad-CAM weighs: the last convolutional layer, or each member's for an
    average of classifiers (their maps are summed: each member's share of the evidence)."""
    members = member_last_conv_names(model)
    return [model.get_layer(name) for name in members] if members else [last_conv_layer(model)]


def normalise(heat):
    """Scale a non-negative map to [0, 1]; an all-zero (or non-finite) map stays zero."""
    heat = np.nan_to_num(np.asarray(heat, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    heat = np.maximum(heat, 0.0)
    top = float(heat.max()) if heat.size else 0.0
    if top <= EMPTY_MAP_EPSILON:
        return np.zeros_like(heat)
    return heat / top


class Explainer:
    """Probabilities, Grad-CAM and saliency for one flat functional classifier."""

    def __init__(self, model, smoothgrad_samples=1, smoothgrad_noise=0.1, temperature=1.0):
        import keras
        import tensorflow as tf
        self.model = model
        self.temperature = float(temperature)  # calibration: probabilities = softmax(logits / T)
        size = model.input_shape[1:3]
        self.input_shape = (int(size[0]), int(size[1]))
        # Built once per model, never per request.
        maps = [layer.output for layer in grad_cam_layers(model)]
        self._grad_model = keras.Model(model.inputs, [*maps, model.get_layer(LOGITS_LAYER).output])
        self._cam_grid = max((int(m.shape[1]), int(m.shape[2])) for m in maps)
        # One noisy copy by default: the page smooths the map over the lesion anyway
        # (overlays.legible_saliency), and each copy costs a forward and a backward pass
        # through the whole network, the dearest step of an analysis (docs/performance.md).
        self.smoothgrad_samples = int(smoothgrad_samples)
        self.smoothgrad_noise = float(smoothgrad_noise)
        image_spec = tf.TensorSpec((1, *self.input_shape, 3), tf.float32)
        views_spec = tf.TensorSpec((None, *self.input_shape, 3), tf.float32)
        index_spec = tf.TensorSpec((), tf.int32)
        self._cam = tf.function(self._probabilities_and_cam,
                                input_signature=[views_spec, views_spec, index_spec])
        self._saliency = tf.function(self._smoothgrad, input_signature=[image_spec, index_spec])

    def _probabilities_and_cam(self, views, others, class_index):
        """One forward pass over the image's views (the image first) and `others` (images
        that only need their pooled features, such as the whole photograph the dermoscopy
        gate reads; may be none): the views' mean softmax, and the Grad-CAM of the first view.
        The gradient only runs back through the pooling and Dense head to the last
        convolutional block, so it costs almost nothing beside the forward pass; one batch
        costs less than two calls."""
        import tensorflow as tf
        count = tf.shape(views)[0]
        with tf.GradientTape() as tape:
            *all_maps, all_logits = self._grad_model(tf.concat([views, others], 0), training=False)
            logits = all_logits[:count]
            probabilities = tf.reduce_mean(tf.nn.softmax(logits / self.temperature), axis=0)
            index = tf.where(class_index < 0, tf.cast(tf.argmax(probabilities), tf.int32), class_index)
            target = logits[0, index]
        gradients = tape.gradient(target, all_maps)
        cam = 0.0
        for maps, grads in zip(all_maps, gradients):
            weights = tf.reduce_mean(grads[:1], axis=(1, 2))  # one weight per channel
            evidence = tf.reduce_sum(maps[:1] * weights[:, None, None, :], axis=-1)[..., None]
            if tuple(evidence.shape[1:3]) != self._cam_grid:  # a smaller member's grid
                evidence = tf.image.resize(evidence, self._cam_grid)
            cam += evidence[0, ..., 0]
        cam = tf.nn.relu(cam)
        # The pooled features (the classifier head's input), averaged over the views: what
        # the unusual-image score measures.
        pooled = tf.concat([tf.reduce_mean(maps[:count], axis=(0, 1, 2)) for maps in all_maps], 0)
        other = tf.concat([tf.reduce_mean(maps[count:], axis=(1, 2)) for maps in all_maps], -1)
        return probabilities, cam, index, pooled, other

    def _smoothgrad(self, image, class_index):
        import tensorflow as tf
        noise = tf.random.normal((self.smoothgrad_samples, *self.input_shape, 3),
                                 stddev=self.smoothgrad_noise * 255.0)
        noisy = tf.repeat(image, self.smoothgrad_samples, axis=0) + noise
        with tf.GradientTape() as tape:
            tape.watch(noisy)
            logits = self._grad_model(noisy, training=False)[-1]
            target = tf.reduce_sum(logits[:, class_index])
        gradients = tape.gradient(target, noisy)
        return tf.reduce_mean(tf.reduce_max(tf.abs(gradients), axis=-1), axis=0)

    def explain(self, image, class_index=None, saliency=True, views=None, others=None):
        """image: (H, W, 3) uint8 at the model's input size. views: optional (V, H, W, 3)
        batch starting with the image (test-time views); probabilities are their mean.
        others: optional (N, H, W, 3) images whose pooled features are wanted too.

        Returns a dict: probabilities, features (the pooled features, averaged over the
        views), class_index, gradcam and saliency maps (float32 in [0, 1] at the input
        size), gradcam_empty when the Grad-CAM had no positive evidence (the map is then
        all zero, not noise scaled up), and other_features (N, features).
        """
        import tensorflow as tf
        batch = tf.constant(np.asarray(image, np.float32)[None])
        views = batch if views is None else tf.constant(np.asarray(views, np.float32))
        others = (tf.zeros((0, *self.input_shape, 3), tf.float32) if others is None
                  else tf.constant(np.asarray(others, np.float32)))
        wanted = tf.constant(-1 if class_index is None else int(class_index), tf.int32)
        probabilities, cam, index, pooled, other_features = self._cam(views, others, wanted)
        cam = cam.numpy()
        result = {"probabilities": probabilities.numpy(), "features": pooled.numpy(),
                  "class_index": int(index), "gradcam_empty": bool(cam.max() <= EMPTY_MAP_EPSILON),
                  "other_features": other_features.numpy()}
        result["gradcam"] = normalise(cv2.resize(cam, self.input_shape[::-1],
                                                 interpolation=cv2.INTER_LINEAR))
        if saliency:
            result["saliency"] = self.saliency(image, result["class_index"])
        return result

    def saliency(self, image, class_index):
        """The saliency map of `class_index` for one (H, W, 3) image, in [0, 1]."""
        import tensorflow as tf
        batch = tf.constant(np.asarray(image, np.float32)[None])
        return normalise(self._saliency(batch, tf.constant(int(class_index), tf.int32)).numpy())
