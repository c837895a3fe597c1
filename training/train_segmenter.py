"""Train the lesion U-Net (MobileNetV2 encoder) on images with lesion masks.

    python -m training.train_segmenter --data ../shared/data/ham10000 \
        --init ../shared/weights/dog_breed_mobilenetv2.h5 --out models/unet.h5

Checkpoints every epoch in --run-dir; --resume continues from the last one.
"""
import argparse
import time

import numpy as np

from skinlesion.cards import SEGMENTER_FILE
from training.common import (add_determinism_argument, cached_arrays, configure_threads, fit_best, seed_training,
                             ship, training_record)

# --- settings (each one is also a flag) -----------------------------------------------
DATA = "../shared/data/ham10000"
OUT = f"models/{SEGMENTER_FILE}"
RUN_DIR = "runs/unet"
CACHE_DIR = "runs/cache"
INPUT_SHAPE = (128, 160)  # height, width: keeps HAM10000's 4:3 aspect, multiple of 32
EPOCHS = 30
BATCH_SIZE = 16
LEARNING_RATE = 1e-3
PATIENCE = 6
VAL_FRACTION = 0.15
SEED = 42
STEPS = "color_constancy"
INIT = "none"
FREEZE_THROUGH = "block_6_project_BN"  # encoder layers kept at their initial weights
THREADS = 0  # 0: TensorFlow decides


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=DATA, help="folder with images and *_segmentation masks")
    p.add_argument("--out", default=OUT)
    p.add_argument("--run-dir", default=RUN_DIR)
    p.add_argument("--cache-dir", default=CACHE_DIR)
    p.add_argument("--input-shape", default=f"{INPUT_SHAPE[0]}x{INPUT_SHAPE[1]}", help="HxW")
    p.add_argument("--epochs", type=int, default=EPOCHS)
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    p.add_argument("--lr", type=float, default=LEARNING_RATE)
    p.add_argument("--patience", type=int, default=PATIENCE)
    p.add_argument("--val-fraction", type=float, default=VAL_FRACTION)
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--steps", default=STEPS, help="preprocessing steps, comma-separated, or none")
    p.add_argument("--init", default=INIT, help="imagenet | none | PATH to a Keras model")
    p.add_argument("--freeze-through", default=FREEZE_THROUGH,
                   help="freeze encoder layers up to this layer name ('' trains all)")
    p.add_argument("--limit", type=int, default=0, help="use only N images (smoke tests)")
    p.add_argument("--threads", type=int, default=THREADS)
    p.add_argument("--workers", type=int, default=2, help="processes preparing images")
    p.add_argument("--resume", action="store_true")
    add_determinism_argument(p)
    p.add_argument("--note", default="", help="free text recorded in the model card")
    return p.parse_args(argv)


def dice_bce_loss(y_true, y_pred):
    import tensorflow as tf
    y_true = tf.cast(y_true, y_pred.dtype)
    bce = tf.reduce_mean(tf.keras.losses.binary_crossentropy(y_true, y_pred))
    intersection = tf.reduce_sum(y_true * y_pred, axis=[1, 2, 3])
    total = tf.reduce_sum(y_true + y_pred, axis=[1, 2, 3])
    dice = (2 * intersection + 1.0) / (total + 1.0)
    return bce + tf.reduce_mean(1.0 - dice)


def jaccard_per_image(true_masks, predicted_masks):
    """Jaccard index of each image; two empty masks agree perfectly."""
    true_masks = true_masks.reshape(len(true_masks), -1)
    predicted_masks = predicted_masks.reshape(len(predicted_masks), -1)
    intersection = (true_masks & predicted_masks).sum(1)
    union = (true_masks | predicted_masks).sum(1)
    return np.where(union > 0, intersection / np.maximum(union, 1), 1.0)


def make_pipeline(images, masks, batch_size, training, seed):
    import tensorflow as tf
    from training.augment import color_jitter, flips, geometry_layers
    data = tf.data.Dataset.from_tensor_slices((images, masks[..., None].astype(np.uint8)))
    if not training:
        return data.map(lambda x, y: (tf.cast(x, tf.float32), tf.cast(y, tf.float32))) \
                   .batch(batch_size).prefetch(tf.data.AUTOTUNE)
    geometry = geometry_layers(rotation=0.08, zoom=0.12)

    def augment(image, mask):
        stacked = tf.concat([tf.cast(image, tf.float32), tf.cast(mask, tf.float32) * 255.0], -1)
        stacked = geometry(flips(stacked, square=False), training=True)
        image, mask = stacked[..., :3], tf.cast(stacked[..., 3:] > 127.5, tf.float32)
        return color_jitter(image), mask

    return (data.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
            .batch(batch_size, drop_remainder=True)
            .map(augment, num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE))


def segmenter_card(args, steps, input_shape, samples, train, val, state, minutes, metrics):
    return {
        "task": "segmentation",
        "name": "U-Net (MobileNetV2 encoder) lesion segmenter",
        "version": time.strftime("%Y-%m-%d"),
        "input_size": {"height": input_shape[0], "width": input_shape[1]},
        "input": "RGB uint8 0-255 (scaled to [-1, 1] inside the model)",
        "output": "per-pixel lesion probability; threshold 0.5, resized to the image's own size",
        "preprocessing": list(steps),
        "data": {"source": str(args.data), "images": len(samples), "train_images": len(train),
                 "val_images": len(val), "dataset": "HAM10000 (Tschandl et al. 2018), "
                 "CC BY-NC 4.0; masks: Tschandl et al."},
        "split": {"method": "by lesion_id, stratified by class", "val_fraction": args.val_fraction,
                  "seed": args.seed},
        "frozen_through": args.freeze_through if args.init != "none" else None,
        **training_record(state, minutes, init=args.init, note=args.note, max_epochs=args.epochs,
                           deterministic=args.deterministic),
        "validation_metrics": metrics,
    }


def main(argv=None):
    args = parse_args(argv)
    configure_threads(args.threads)
    import keras
    from skinlesion.cards import write_card
    from training.datasets import read_dataset, split_by_group
    from skinlesion.inputs import prepare_for_segmenter
    from training.builders import build_unet, freeze_through, initialise_backbone
    from skinlesion.preprocess import parse_steps
    from training.evaluate import evaluate_segmenter

    seed_training(args.seed, args.deterministic)
    steps = parse_steps(args.steps)
    input_shape = tuple(int(v) for v in args.input_shape.lower().split("x"))
    samples = [s for s in read_dataset(args.data) if s.mask is not None]
    if not samples:
        raise SystemExit(f"{args.data}: no images with lesion masks (*_segmentation.png).")
    if args.limit:
        samples = samples[: args.limit]
    train, val = split_by_group(samples, args.val_fraction, args.seed)
    print(f"{len(samples)} images with masks: {len(train)} train, {len(val)} val "
          f"(split by lesion, seed {args.seed})", flush=True)

    def arrays(subset, name):
        jobs = [(s.image, s.mask, steps, input_shape) for s in subset]
        return cached_arrays(name, prepare_for_segmenter, jobs, args.cache_dir, args.workers)

    train_x, train_y = arrays(train, "seg-train")
    val_x, val_y = arrays(val, "seg-val")

    def build():
        model = build_unet((*input_shape, 3))
        copied = initialise_backbone(model, args.init, input_shape[1])
        frozen = freeze_through(model, args.freeze_through) if args.init != "none" else 0
        print(f"init {args.init}: {copied} layers copied, {frozen} frozen", flush=True)
        model.compile(optimizer=keras.optimizers.Adam(args.lr), loss=dice_bce_loss)
        return model

    def evaluate(current):
        predicted = current.predict(val_x.astype(np.float32), batch_size=32, verbose=0)[..., 0] > 0.5
        return {"val_jaccard": float(jaccard_per_image(val_y, predicted).mean())}

    best, state, minutes = fit_best(
        build, make_pipeline(train_x, train_y, args.batch_size, True, args.seed),
        make_pipeline(val_x, val_y, 32, False, args.seed), "val_jaccard", evaluate,
        run_dir=args.run_dir, resume=args.resume, epochs=args.epochs, lr=args.lr, patience=args.patience,
        custom_objects={"dice_bce_loss": dice_bce_loss})
    ship(best, args.out)
    metrics = evaluate_segmenter(best, val, steps, input_shape)
    write_card(args.out, segmenter_card(args, steps, input_shape, samples, train, val, state, minutes, metrics))
    print(f"wrote {args.out}: {metrics}", flush=True)


if __name__ == "__main__":
    main()
