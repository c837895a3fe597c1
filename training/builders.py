"""Model builders and backbone initialisation, for training.

Every classifier is one flat functional graph ending in a layer named "logits" followed by a
softmax (skinlesion/models.py says why); an average of classifiers is one such graph too.
"""
import os

import keras
from keras import layers

from skinlesion.cards import ModelFileError
from skinlesion.layer_names import LOGITS_LAYER, MEMBER_PREFIX, POOLED_LAYER, SEQUENTIAL_LAST_CONV
from skinlesion.models import MeanProbabilityLogits

# U-Net skip connections, from fine to coarse, on a MobileNetV2 encoder.
UNET_SKIPS = ("block_1_expand_relu", "block_3_expand_relu",
              "block_6_expand_relu", "block_13_expand_relu")
UNET_BOTTOM = "block_16_project"


def _mobilenet_on(tensor):
    """MobileNetV2 built directly on `tensor`, so its layers join the caller's graph."""
    return keras.applications.MobileNetV2(input_tensor=tensor, include_top=False,
                                          weights=None, alpha=1.0)


def _scaled_input(input_shape):
    """Models take raw 0-255 RGB; the scaling to [-1, 1] lives inside the graph."""
    inputs = keras.Input(shape=input_shape, name="image")
    scaled = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale")(inputs)
    return inputs, scaled


def build_mobilenet_classifier(num_classes, input_size=160, dropout=0.3):
    inputs, scaled = _scaled_input((input_size, input_size, 3))
    backbone = _mobilenet_on(scaled)
    x = layers.GlobalAveragePooling2D(name=POOLED_LAYER)(backbone.output)
    x = layers.Dropout(dropout, name="head_dropout")(x)
    logits = layers.Dense(num_classes, name=LOGITS_LAYER)(x)
    probabilities = layers.Softmax(name="probabilities")(logits)
    return keras.Model(inputs, probabilities, name="mobilenetv2_classifier")


def build_sequential_classifier(num_classes, input_size=160, dropout=0.3):
    """The plain Conv2D baseline that published projects compare against."""
    inputs, x = _scaled_input((input_size, input_size, 3))
    for index, filters in enumerate((32, 64, 128, 256)):
        name = SEQUENTIAL_LAST_CONV if index == 3 else f"conv{index}"
        x = layers.Conv2D(filters, 3, padding="same", name=name + "_conv")(x)
        x = layers.BatchNormalization(name=name + "_bn")(x)
        x = layers.ReLU(name=name)(x)
        if index < 3:
            x = layers.MaxPooling2D(name=f"pool{index}")(x)
    x = layers.GlobalAveragePooling2D(name=POOLED_LAYER)(x)
    x = layers.Dropout(dropout, name="head_dropout")(x)
    logits = layers.Dense(num_classes, name=LOGITS_LAYER)(x)
    probabilities = layers.Softmax(name="probabilities")(logits)
    return keras.Model(inputs, probabilities, name="sequential_classifier")


CLASSIFIER_BUILDERS = {
    "mobilenetv2": build_mobilenet_classifier,
    "sequential": build_sequential_classifier,
}


def build_classifier(arch, num_classes, input_size):
    if arch not in CLASSIFIER_BUILDERS:
        raise ValueError(f"Unknown architecture {arch!r}; choose from {sorted(CLASSIFIER_BUILDERS)}.")
    return CLASSIFIER_BUILDERS[arch](num_classes, input_size)


def _upsample(x, filters, name):
    x = layers.Conv2DTranspose(filters, 3, strides=2, padding="same", use_bias=False,
                               name=name + "_up")(x)
    x = layers.BatchNormalization(name=name + "_bn")(x)
    return layers.ReLU(name=name + "_relu")(x)


def build_unet(input_shape=(128, 160, 3), decoder_filters=(192, 96, 48, 32)):
    """U-Net with a MobileNetV2 encoder; outputs a per-pixel lesion probability."""
    inputs, scaled = _scaled_input(input_shape)
    encoder = _mobilenet_on(scaled)
    x = encoder.get_layer(UNET_BOTTOM).output
    skips = [encoder.get_layer(name).output for name in reversed(UNET_SKIPS)]
    for index, (skip, filters) in enumerate(zip(skips, decoder_filters)):
        x = _upsample(x, filters, f"decoder{index}")
        x = layers.Concatenate(name=f"decoder{index}_concat")([x, skip])
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False,
                          name=f"decoder{index}_conv")(x)
        x = layers.BatchNormalization(name=f"decoder{index}_conv_bn")(x)
        x = layers.ReLU(name=f"decoder{index}_conv_relu")(x)
    x = _upsample(x, 16, "decoder_out")
    outputs = layers.Conv2D(1, 1, activation="sigmoid", name="mask")(x)
    return keras.Model(inputs, outputs, name="unet_mobilenetv2")


# --- initialisation -----------------------------------------------------------------

def _find_mobilenet(model):
    """The (possibly nested) sub-model holding MobileNetV2's layers, or the model itself."""
    names = {layer.name for layer in model.layers}
    if "Conv1" in names:
        return model
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found = _find_mobilenet(layer)
            if found is not None:
                return found
    return None


def _imagenet_source(input_size):
    try:
        return keras.applications.MobileNetV2(weights="imagenet", include_top=False,
                                              input_shape=(input_size, input_size, 3))
    except Exception as error:  # urllib/ssl/OSError: no single type covers "offline"
        raise ModelFileError(
            "Could not download the ImageNet weights for MobileNetV2 "
            f"({type(error).__name__}: {error}). Without internet, start from a local "
            "Keras model with --init PATH, or train from scratch with --init none.") from None


def initialise_backbone(model, init, input_size=160):
    """Copy MobileNetV2 weights into `model` by layer name. Returns how many layers took.

    init: "none" (keep random weights), "imagenet" (Keras download), or the path of a
    Keras model file that contains a MobileNetV2 (nested or flat, any input size).
    """
    if init in (None, "", "none"):
        return 0
    if init == "imagenet":
        source = _imagenet_source(input_size)
    else:
        if not os.path.isfile(init):
            raise ModelFileError(f"--init: no such model file: {init}")
        try:
            loaded = keras.models.load_model(init, compile=False)
        except Exception as error:
            raise ModelFileError(f"--init: cannot load {init} as a Keras model ({error}).") from None
        source = _find_mobilenet(loaded)
        if source is None:
            raise ModelFileError(f"--init: {init} contains no MobileNetV2 layers (no 'Conv1').")
    source_layers = {layer.name: layer for layer in source.layers}
    copied = 0
    for layer in model.layers:
        donor = source_layers.get(layer.name)
        if donor is None or not layer.weights:
            continue
        donor_weights = donor.get_weights()
        if [w.shape for w in donor_weights] == [tuple(w.shape) for w in layer.weights]:
            layer.set_weights(donor_weights)
            copied += 1
    if copied == 0:
        raise ModelFileError(f"--init {init}: no layer matched by name; nothing was copied.")
    return copied


# --- fine-tuning ---------------------------------------------------------------------

def set_batchnorm_momentum(model, momentum=0.9):
    """Let BatchNormalization statistics follow the new data within an epoch or two.

    keras.applications.MobileNetV2 uses momentum 0.999: after a few hundred fine-tuning
    steps the moving statistics still describe the donor's data, and a model that is
    fine in training mode collapses to one or two classes in inference mode.
    """
    count = 0
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = momentum
            count += 1
    return count


def freeze_through(model, layer_name):
    """Freeze every layer up to and including `layer_name` (graph order). Returns the count.

    On two CPU cores most of a training step is spent in the high-resolution early
    blocks; their ImageNet filters (edges, blobs, colour) transfer to dermoscopy, so
    freezing them buys epochs. Frozen BatchNormalization layers run in inference mode.
    """
    if not layer_name:
        return 0
    names = [layer.name for layer in model.layers]
    if layer_name not in names:
        raise ValueError(f"No layer named {layer_name!r} to freeze through.")
    last = names.index(layer_name)
    for layer in model.layers[: last + 1]:
        layer.trainable = False
    return last + 1


def _renamed_copy(model, tensor, prefix):
    """`model`'s layers (weights included), renamed with `prefix`, built on `tensor`."""
    def renamed(layer):
        return layer.__class__.from_config({**layer.get_config(), "name": prefix + layer.name})

    copy = keras.models.clone_model(model, input_tensors=tensor, clone_function=renamed)
    for layer in model.layers:
        if not isinstance(layer, layers.InputLayer):
            copy.get_layer(prefix + layer.name).set_weights(layer.get_weights())
    return copy


def build_average(members):
    """One flat classifier that averages the members' probabilities.

    Its input is the largest member's; a smaller member sees the crop resized to its
    own size inside the graph (bilinear with antialiasing: an area resize has no gradient for
    the saliency map). "pool" concatenates the members' pooled features (what the
    unusual-image score reads); one Dense layer holds every member's head side by side (its
    kernel is block-diagonal: member i's logits read member i's features only), and
    "logits" is the log of the members' mean probabilities."""
    import numpy as np
    size = max(int(member.input_shape[1]) for member in members)
    classes = int(members[0].output_shape[-1])
    inputs = keras.Input(shape=(size, size, 3), name="image")
    pooled, kernels, biases = [], [], []
    for index, member in enumerate(members):
        prefix = MEMBER_PREFIX.format(index)
        own = int(member.input_shape[1])
        tensor = inputs if own == size else layers.Resizing(own, own, antialias=True,
                                                            name=prefix + "resize")(inputs)
        copy = _renamed_copy(member, tensor, prefix)
        pooled.append(copy.get_layer(prefix + POOLED_LAYER).output)
        kernel, bias = member.get_layer(LOGITS_LAYER).get_weights()
        kernels.append(kernel)
        biases.append(bias)
    features = layers.Concatenate(name=POOLED_LAYER)(pooled)
    heads = layers.Dense(classes * len(members), name="member_logits")
    member_logits = heads(features)
    rows = [kernel.shape[0] for kernel in kernels]
    block = np.zeros((sum(rows), classes * len(members)), np.float32)
    for index, kernel in enumerate(kernels):
        start = sum(rows[:index])
        block[start:start + rows[index], index * classes:(index + 1) * classes] = kernel
    heads.set_weights([block, np.concatenate(biases)])
    logits = MeanProbabilityLogits(len(members), name=LOGITS_LAYER)(member_logits)
    probabilities = layers.Softmax(name="probabilities")(logits)
    return keras.Model(inputs, probabilities, name="average_of_classifiers")
