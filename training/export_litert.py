"""Export shipped models to LiteRT: what a serving process runs instead of TensorFlow.

    python -m training.export_litert --model models/unet.h5 models/classifier_7class.h5 models/classifier_3class.h5

For each model (the .h5 stays the source of truth) it writes beside it `<name>.tflite`, the
forward graph with the outputs serving needs, and for a classifier `<name>.saliency.tflite`,
the gradient of a logit with respect to the input (skinlesion.graphs builds both). It then
runs both runtimes on check images (fixed random images and, with --images, real ones) and
refuses to write the card when LiteRT's outputs differ from Keras's by more than the
tolerances below; the card's "litert" section names the files with their sha256, the .h5's
sha256 they came from (serving refuses a stale export), and the differences measured.
Run it whenever a model is shipped, after the card is final.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Largest absolute differences allowed between LiteRT and Keras on the check images. The
# outputs are float32 from the same weights; only the order of summation differs.
# The saliency map is a gradient through ReLU6s: where a unit sits at 0 or 6 a float32
# rounding switches its path on or off, so single pixels may move by a few per cent; the map as
# a whole is held by its relative L2 error, against which SmoothGrad's own noise (one noisy
# copy of the image per map) moves it by far more (docs/performance.md).
TOLERANCES = {"probabilities": 1e-4, "mask": 1e-4, "gradcam": 1e-3, "saliency_relative_l2": 3e-2}
CHECK_IMAGES = 6
SEED = 0


def convert(function):
    """A tf.function with one input signature -> the bytes of a LiteRT flatbuffer, the weights
    frozen into it as constants."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
    frozen = convert_variables_to_constants_v2(function.get_concrete_function())
    return tf.lite.TFLiteConverter.from_concrete_functions([frozen]).convert()


def output_names(function):
    """The names of a graph's outputs in the converted file's order (a dict flattens by key)."""
    return sorted(function.get_concrete_function().structured_outputs)


def check_images(input_shape, images=(), count=CHECK_IMAGES):
    """(N, H, W, 3) float32: real images resized to the model's input where given, else
    smooth random images with a dark blob (an output that sees nothing would pass any check)."""
    from skinlesion.imageio import load_image
    from skinlesion.regions import resize_rgb
    height, width = input_shape
    batch = [resize_rgb(load_image(str(path)), height, width) for path in images][:count]
    rng = np.random.default_rng(SEED)
    while len(batch) < count:
        skin = rng.uniform(120, 230, 3)
        image = np.tile(skin, (height, width, 1)) + rng.normal(0, 12, (height, width, 3))
        rows, columns = np.mgrid[:height, :width]
        centre, radius = rng.uniform(0.3, 0.7, 2) * (height, width), rng.uniform(0.15, 0.35) * min(height, width)
        inside = (rows - centre[0]) ** 2 + (columns - centre[1]) ** 2 < radius ** 2
        image[inside] *= rng.uniform(0.3, 0.6)
        batch.append(np.clip(image, 0, 255).astype(np.uint8))
    return np.stack(batch).astype(np.float32)


def differences(keras_graphs, litert_graphs, images):
    """Largest absolute differences of every output, and of the probabilities, on `images`."""
    from skinlesion.explain import softmax
    from skinlesion.layer_names import LOGITS_LAYER
    expected, found = keras_graphs.run(images), litert_graphs.run(images)
    measured = {name: float(np.abs(found[name] - expected[name]).max()) for name in expected}
    if LOGITS_LAYER in expected:
        measured["probabilities"] = float(np.abs(softmax(found[LOGITS_LAYER]) - softmax(expected[LOGITS_LAYER])).max())
        worst = 0.0
        for image in images[:3]:
            index = int(np.argmax(expected[LOGITS_LAYER][0]))
            want = keras_graphs.input_gradient(image, index)
            got = litert_graphs.input_gradient(image, index)
            worst = max(worst, float(np.linalg.norm(got - want) / max(float(np.linalg.norm(want)), 1e-30)))
        measured["saliency_relative_l2"] = worst
    return {name: float(f"{value:.3g}") for name, value in measured.items()}


def export(model_path, images=()):
    """Write the model's LiteRT files, check them against Keras, record them in its card."""
    import tensorflow as tf
    from skinlesion import graphs
    from skinlesion.cards import read_card, sha256_of, write_card
    from skinlesion.models import load_checked_model
    from skinlesion.runtime import keras_graphs, litert_graphs
    model_path = Path(model_path)
    started = time.time()
    model, card = load_checked_model(model_path)
    functions = {"forward": graphs.forward_function(model)}
    if graphs.is_classifier(model):
        functions["saliency"] = graphs.saliency_function(model)
    section = {"runtime": "LiteRT (ai-edge-litert), XNNPACK on the CPU",
               "source_sha256": card["sha256"], "members": graphs.member_count(model),
               "exported_by": "python -m training.export_litert", "tensorflow": tf.__version__}
    for graph, function in functions.items():
        suffix = ".tflite" if graph == "forward" else f".{graph}.tflite"
        path = model_path.with_name(model_path.stem + suffix)
        path.write_bytes(convert(function))
        section[graph] = {"file": path.name, "sha256": sha256_of(path), "outputs": output_names(function)}
    served = litert_graphs(model_path, {**card, "litert": section})
    measured = differences(keras_graphs(model, card), served, check_images(model.input_shape[1:3], images))
    too_far = {name: value for name, value in measured.items()
               if name in TOLERANCES and value > TOLERANCES[name]}
    if too_far:
        raise SystemExit(f"{model_path}: LiteRT differs from Keras beyond the tolerances {TOLERANCES}: {too_far}; "
                         "the card was not changed.")
    section["check"] = {"images": f"{CHECK_IMAGES} ({len(images[:CHECK_IMAGES])} real, the rest synthetic)",
                        "largest_differences_from_keras": measured, "tolerances": TOLERANCES}
    card = read_card(model_path)  # as on disk, so nothing else in it changes
    card["litert"] = section
    write_card(model_path, card)
    print(f"{model_path}: wrote {', '.join(section[g]['file'] for g in functions)} in "
          f"{time.time() - started:.0f} s; largest differences from Keras {measured}", flush=True)
    return section


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", nargs="+", required=True, help="model .h5 files, each with its card")
    p.add_argument("--images", nargs="*", default=[], help="real images to check the export on")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from skinlesion.cards import ModelFileError
    for path in args.model:
        try:
            export(path, args.images)
        except ModelFileError as error:
            raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    main()
