"""The serving graphs of a Keras model, in TensorFlow: what the LiteRT exporter converts and
what the Keras runtime runs, so both runtimes compute one graph.

- forward: a batch of (N, H, W, 3) float32 0-255 images in; for a U-Net its map ("mask"), for a
  classifier its "logits", "pool" (the pooled features) and, for Grad-CAM, the class activation
  maps of each member ("class_maps_<i>": (N, h, w, classes), the last convolutional maps times
  the member's Dense kernel over h*w, which is the gradient Grad-CAM weighs the maps by, since
  a member's logits are global average pooling then Dense), plus "member_logits" for an average
  (the chain from the average's logits back to each member's is taken in numpy:
  skinlesion.explain).
- saliency: one image and a class index in; the largest absolute gradient of that class's
  logit over the colour channels, (1, H, W). LiteRT has no kernels for the gradients of ReLU6
  and of depthwise convolutions, so the graph is built on a copy of the model whose ReLU6 and
  DepthwiseConv2D layers carry their gradients written in forward operations
  (`with_convertible_gradients`); an antialiased Resizing (an average's smaller member) becomes
  its two constant matrices, since no converter takes TensorFlow's ScaleAndTranslate.

Imports TensorFlow and Keras: for training, evaluation and the exporter, never for serving.
"""
import keras
import numpy as np
import tensorflow as tf
from keras import layers

from .layer_names import LAST_CONV_LAYERS, LOGITS_LAYER, POOLED_LAYER, SEGMENTER_OUTPUT
from .models import member_last_conv_names


def is_classifier(model):
    return LOGITS_LAYER in {layer.name for layer in model.layers}


# --- layers whose gradients LiteRT can run -------------------------------------------------

@tf.custom_gradient
def _relu6(x):
    def gradient(upstream):
        inside = tf.logical_and(x > 0.0, x < 6.0)
        return upstream * tf.cast(inside, upstream.dtype)
    return tf.clip_by_value(x, 0.0, 6.0), gradient


class ConvertibleReLU6(layers.Layer):
    """ReLU6 whose gradient is a mask product (TensorFlow's Relu6Grad has no LiteRT kernel)."""

    def call(self, x):
        return _relu6(x)


def _dilate(x, stride):
    """Insert stride-1 zeros between the rows and columns of (N, h, w, C) (a strided layer's
    gradient spreads back over every stride-th input position)."""
    if stride == 1:
        return x
    shape = tf.shape(x)
    n, h, w, c = shape[0], shape[1], shape[2], x.shape[-1]
    zeros = tf.zeros_like(x)
    x = tf.reshape(tf.stack([x] + [zeros] * (stride - 1), axis=3), (n, h, w * stride, c))[:, :, :-(stride - 1)]
    zeros = tf.zeros_like(x)
    return tf.reshape(tf.stack([x] + [zeros] * (stride - 1), axis=2), (n, h * stride, -1, c))[:, :-(stride - 1)]


def _depthwise(kernel, bias, stride, padding):
    """A depthwise convolution whose input gradient is itself a depthwise convolution: of the
    dilated upstream gradient with the spatially flipped kernel (TensorFlow's
    DepthwiseConv2dNativeBackpropInput has no LiteRT kernel). Gradients reach the input only;
    the weights are constants here."""
    size = int(kernel.shape[0])
    flipped = kernel[::-1, ::-1]

    @tf.custom_gradient
    def convolve(x):
        y = tf.nn.depthwise_conv2d(x, kernel, (1, stride, stride, 1), padding.upper())
        if bias is not None:
            y = y + bias

        def gradient(upstream):
            height, width = x.shape[1], x.shape[2]
            if padding == "same":  # TensorFlow's SAME: the extra row or column goes at the end
                out_h, out_w = -(-height // stride), -(-width // stride)
                pad_h = max((out_h - 1) * stride + size - height, 0)
                pad_w = max((out_w - 1) * stride + size - width, 0)
                top, left = pad_h // 2, pad_w // 2
            else:
                top = left = 0
            spread = _dilate(upstream, stride)
            spread = tf.pad(spread, [[0, 0], [size - 1, size - 1], [size - 1, size - 1], [0, 0]])
            full = tf.nn.depthwise_conv2d(spread, flipped, (1, 1, 1, 1), "VALID")
            # `full` covers the padded input from its first row; cut (or zero-extend) to the input.
            full = tf.pad(full, [[0, 0], [0, max(top + height - full.shape[1], 0)],
                                 [0, max(left + width - full.shape[2], 0)], [0, 0]])
            return full[:, top:top + height, left:left + width]
        return y, gradient
    return convolve


class ConvertibleDepthwiseConv2D(layers.Layer):
    """A trained DepthwiseConv2D (weights frozen as constants) with a convertible gradient."""

    def __init__(self, kernel, bias, stride, padding, **kwargs):
        super().__init__(**kwargs)
        self._convolve = _depthwise(tf.constant(kernel), None if bias is None else tf.constant(bias),
                                    stride, padding)

    def call(self, x):
        return self._convolve(x)


class FixedLinearResize(layers.Layer):
    """An image resize that is a fixed linear map (antialiased bilinear): rows, then columns,
    each a constant matrix product."""

    def __init__(self, rows, columns, **kwargs):
        super().__init__(**kwargs)
        self._rows, self._columns = tf.constant(rows), tf.constant(columns)

    def call(self, x):
        x = tf.matmul(tf.transpose(x, (0, 2, 3, 1)), self._rows, transpose_b=True)  # (n, W, c, h)
        x = tf.matmul(tf.transpose(x, (0, 3, 2, 1)), self._columns, transpose_b=True)  # (n, h, c, w)
        return tf.transpose(x, (0, 1, 3, 2))


def resize_matrices(layer, in_height, in_width):
    """The (out, in) row and column matrices of a Resizing layer, read off by resizing the
    unit vectors (each channel is resized on its own)."""
    def matrix(length, out_length, axis):
        unit = np.eye(length, dtype=np.float32)  # channel i holds the unit vector i
        shape = (1, length, 1, length) if axis == 0 else (1, 1, length, length)
        resized = np.asarray(tf.image.resize(unit.reshape(shape), (out_length, 1) if axis == 0 else (1, out_length),
                                             method=layer.interpolation, antialias=True))
        return resized.reshape(out_length, length)
    return matrix(in_height, layer.height, 0), matrix(in_width, layer.width, 1)


def _converted_copy(model, gradients):
    """A copy of `model` (same weights) whose antialiased Resizing layers are their constant
    matrices and, with `gradients`, whose ReLU6 and DepthwiseConv2D carry convertible gradients."""
    sizes = {layer.name: tuple(int(d) for d in layer.input.shape[1:3])
             for layer in model.layers if isinstance(layer, layers.Resizing)}

    def replace(layer):
        if isinstance(layer, layers.Resizing):
            return FixedLinearResize(*resize_matrices(layer, *sizes[layer.name]), name=layer.name)
        if gradients and isinstance(layer, layers.ReLU) and layer.max_value == 6.0 \
                and not layer.negative_slope and not layer.threshold:
            return ConvertibleReLU6(name=layer.name)
        if gradients and isinstance(layer, layers.DepthwiseConv2D):
            weights = layer.get_weights()
            return ConvertibleDepthwiseConv2D(weights[0], weights[1] if layer.use_bias else None,
                                              layer.strides[0], layer.padding, name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=replace)
    for layer in model.layers:
        target = copy.get_layer(layer.name)
        if layer.weights and target.weights:
            target.set_weights(layer.get_weights())
    return copy


def with_convertible_gradients(model):
    """A copy of `model` (same weights) whose gradients LiteRT can run (see the module doc)."""
    return _converted_copy(model, gradients=True)


def with_fixed_resizes(model):
    """A copy of `model` whose antialiased Resizing layers are their constant matrices (the
    forward graph LiteRT can take); the model itself when it has none."""
    if not any(isinstance(layer, layers.Resizing) for layer in model.layers):
        return model
    return _converted_copy(model, gradients=False)


# --- the graphs -------------------------------------------------------------------------------

def member_heads(model):
    """[(last conv layer name, Dense kernel (features, classes))] of each member; one entry for
    a single classifier."""
    members = member_last_conv_names(model)
    if not members:
        names = {layer.name for layer in model.layers}
        last = next(name for name in LAST_CONV_LAYERS if name in names)
        return [(last, model.get_layer(LOGITS_LAYER).get_weights()[0])]
    kernel = model.get_layer("member_logits").get_weights()[0]
    classes = kernel.shape[1] // len(members)
    heads, start = [], 0
    for index, name in enumerate(members):
        channels = int(model.get_layer(name).output.shape[-1])
        heads.append((name, kernel[start:start + channels, index * classes:(index + 1) * classes]))
        start += channels
    return heads


def forward_function(model):
    """The forward tf.function of `model` (see the module doc), batch of any size."""
    height, width = (int(d) for d in model.input_shape[1:3])
    spec = tf.TensorSpec((None, height, width, 3), tf.float32, name="image")
    if not is_classifier(model):
        @tf.function(input_signature=[spec])
        def forward(image):
            return {SEGMENTER_OUTPUT: model(image, training=False)}
        return forward
    graph_model = with_fixed_resizes(model)
    heads = member_heads(graph_model)
    averaged = bool(member_last_conv_names(graph_model))
    names = [name for name, _ in heads] + [LOGITS_LAYER, POOLED_LAYER] + (["member_logits"] if averaged else [])
    graph = keras.Model(graph_model.inputs, [graph_model.get_layer(name).output for name in names])

    @tf.function(input_signature=[spec])
    def forward(image):
        outputs = graph(image, training=False)
        maps, rest = outputs[:len(heads)], outputs[len(heads):]
        result = {LOGITS_LAYER: rest[0], POOLED_LAYER: rest[1]}
        if averaged:
            result["member_logits"] = rest[2]
        for index, (member_maps, (_, kernel)) in enumerate(zip(maps, heads)):
            area = float(member_maps.shape[1] * member_maps.shape[2])
            result[f"class_maps_{index}"] = tf.einsum("nhwk,kc->nhwc", member_maps, tf.constant(kernel / area))
        return result
    return forward


def saliency_function(model):
    """The saliency tf.function of a classifier: (1, H, W, 3) image and an int32 class index ->
    (1, H, W), the largest absolute gradient of that class's logit over the channels."""
    height, width = (int(d) for d in model.input_shape[1:3])
    convertible = with_convertible_gradients(model)
    logits_model = keras.Model(convertible.inputs, convertible.get_layer(LOGITS_LAYER).output)

    @tf.function(input_signature=[tf.TensorSpec((1, height, width, 3), tf.float32, name="image"),
                                  tf.TensorSpec((), tf.int32, name="class_index")])
    def saliency(image, class_index):
        with tf.GradientTape() as tape:
            tape.watch(image)
            target = tf.reduce_sum(tf.gather(logits_model(image, training=False), class_index, axis=1))
        gradient = tape.gradient(target, image)
        return {"saliency": tf.reduce_max(tf.abs(gradient), axis=-1)}
    return saliency


def member_count(model):
    return max(len(member_last_conv_names(model)), 1)

