"""Train a lesion classifier (MobileNetV2 or a plain Conv2D baseline) on lesion crops.

    python -m training.train_classifier --task 7class --arch mobilenetv2 \
        --init ../shared/weights/dog_breed_mobilenetv2.h5 --data ../shared/data/ham10000

The classifier sees the region the crop mode selects, cut with the lesion mask (the
ground-truth mask in training, the U-Net's at serving). Checkpoints every epoch in
--run-dir; --resume continues from the last one.
"""
import argparse
import time
from pathlib import Path

import numpy as np

from training.common import (RunState, cached_arrays, class_weights, configure_threads,
                             cosine_schedule, distribution_strategy, epoch_callback)

# --- settings (each one is also a flag) -----------------------------------------------
DATA = "../shared/data/ham10000"
TASK = "7class"
ARCH = "mobilenetv2"
INIT = "none"
FREEZE_THROUGH = "block_5_add"  # early blocks kept at their initial weights (CPU budget)
CROP_MODE = "crop"
TRAIN_MASKS = "truth"  # which masks cut the training crops: truth | unet | mixed (half each)
UNET = "models/unet.h5"
STEPS = "color_constancy"
INPUT_SIZE = 160
EPOCHS = 30
BATCH_SIZE = 32
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 1e-4
EMA_MOMENTUM = 0.995  # weight averaging over ~200 steps; the average is evaluated and shipped
PATIENCE = 7
CLASS_WEIGHT_POWER = 1.0  # 1: fully inverse-frequency; 0.5: square root
LABEL_SMOOTHING = 0.05
VAL_FRACTION = 0.15
SEED = 42
MELANOMA_SENSITIVITY = 0.90  # the referral threshold is set to reach this on validation
CACHE_DIR = "runs/cache"
BATCHNORM_MOMENTUM = 0.9
TEST_TIME_AUGMENTATION = "flip4"  # views averaged at validation and serving (classify.py)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=DATA)
    p.add_argument("--task", default=TASK, choices=["7class", "3class"])
    p.add_argument("--arch", default=ARCH, choices=["mobilenetv2", "sequential"])
    p.add_argument("--init", default=INIT, help="imagenet | none | PATH to a Keras model")
    p.add_argument("--crop-mode", default=CROP_MODE, choices=["full", "crop", "masked"])
    p.add_argument("--train-masks", default=TRAIN_MASKS, choices=["truth", "unet", "mixed"],
                   help="cut training crops with the true masks, the U-Net's (as at serving), "
                        "or half and half (validation always uses the true masks)")
    p.add_argument("--unet", default=UNET, help="U-Net for --train-masks unet|mixed")
    p.add_argument("--steps", default=STEPS, help="preprocessing steps, comma-separated, or none")
    p.add_argument("--input-size", type=int, default=INPUT_SIZE)
    p.add_argument("--epochs", type=int, default=EPOCHS)
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    p.add_argument("--lr", type=float, default=LEARNING_RATE)
    p.add_argument("--patience", type=int, default=PATIENCE)
    p.add_argument("--ema", type=float, default=EMA_MOMENTUM,
                   help="momentum of the moving average of the weights (0: none)")
    p.add_argument("--class-weight-power", type=float, default=CLASS_WEIGHT_POWER)
    p.add_argument("--val-fraction", type=float, default=VAL_FRACTION)
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--out", default=None, help="default models/classifier_<task>.h5")
    p.add_argument("--run-dir", default=None, help="default runs/classifier_<task>")
    p.add_argument("--cache-dir", default=CACHE_DIR)
    p.add_argument("--freeze-through", default=FREEZE_THROUGH,
                   help="freeze backbone layers up to this layer name ('' trains all)")
    p.add_argument("--limit", type=int, default=0, help="use only N images (smoke tests)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--mixed-precision", action="store_true", help="float16 compute on GPUs")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--note", default="", help="free text recorded in the model card")
    args = p.parse_args(argv)
    args.out = args.out or f"models/classifier_{args.task}.h5"
    args.run_dir = args.run_dir or f"runs/classifier_{args.task}"
    return args


def make_pipeline(images, labels, num_classes, batch_size, training, seed, weights=None):
    import tensorflow as tf
    from training.augment import color_jitter, flips, geometry_layers
    targets = np.eye(num_classes, dtype=np.float32)[labels]
    if not training:
        data = tf.data.Dataset.from_tensor_slices((images, targets))
        return data.map(lambda x, y: (tf.cast(x, tf.float32), y)).batch(batch_size).prefetch(2)
    sample_weights = np.array([weights[int(label)] for label in labels], np.float32)
    geometry = geometry_layers(rotation=0.5, zoom=0.15)

    def augment(image, target, weight):
        image = geometry(flips(tf.cast(image, tf.float32), square=True), training=True)
        return color_jitter(image), target, weight

    data = tf.data.Dataset.from_tensor_slices((images, targets, sample_weights))
    return (data.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
            .batch(batch_size, drop_remainder=True)
            .map(augment, num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE))


def segmenter_masks(samples, unet_path, folder):
    """The U-Net's mask of every sample, written once as a PNG (None where it found no
    lesion: serving then classifies the whole image, and so does training)."""
    from skinlesion.imageio import load_image, save_mask_png
    from skinlesion.models import load_checked_model
    from skinlesion.preprocess import preprocess
    from skinlesion.segment import Segmenter
    segmenter = Segmenter(*load_checked_model(unet_path))
    folder = Path(folder) / f"unet-masks-{segmenter.card['sha256'][:12]}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, sample in enumerate(samples, 1):
        path, empty = folder / f"{sample.image.stem}.png", folder / f"{sample.image.stem}.none"
        if not path.is_file() and not empty.is_file():
            segmentation = segmenter(preprocess(load_image(sample.image), segmenter.steps))
            if segmentation.found:
                save_mask_png(segmentation.mask, path)
            else:
                empty.touch()
        paths.append(path if path.is_file() else None)
        if number % 1000 == 0:
            print(f"U-Net masks: {number}/{len(samples)}", flush=True)
    return paths


def training_masks(samples, source, unet_path, folder, seed):
    """The mask that cuts each training crop, by --train-masks."""
    truth = [s.mask for s in samples]
    if source == "truth":
        return truth
    predicted = segmenter_masks(samples, unet_path, folder)
    if source == "unet":
        return predicted
    use_predicted = np.random.default_rng(seed).random(len(samples)) < 0.5
    return [p if chosen else t for p, t, chosen in zip(predicted, truth, use_predicted)]


def referral_threshold(labels, probabilities, classes, sensitivity):
    """Lowest-false-alarm threshold on P(malignant) that still flags `sensitivity` of melanomas."""
    from skinlesion.classes import MALIGNANT
    malignant = probabilities[:, [i for i, c in enumerate(classes) if c in MALIGNANT]].sum(1)
    melanoma = np.asarray(labels) == classes.index("mel")
    scores = np.sort(malignant[melanoma])
    if scores.size == 0:
        return None
    threshold = float(scores[int(np.floor((1 - sensitivity) * scores.size))])
    flagged = malignant >= threshold
    is_malignant = np.isin(np.asarray(labels), [classes.index(c) for c in classes if c in MALIGNANT])
    return {"malignant_probability": round(threshold, 4),
            "chosen_for_melanoma_sensitivity": sensitivity,
            "melanoma_sensitivity": round(float(flagged[melanoma].mean()), 4),
            "malignant_sensitivity": round(float(flagged[is_malignant].mean()), 4),
            "benign_flagged_share": round(float(flagged[~is_malignant].mean()), 4)}


def main(argv=None):
    args = parse_args(argv)
    configure_threads(args.threads)
    import keras
    from skinlesion.classes import DISPLAY_NAMES, task_classes
    from skinlesion.datasets import read_dataset, split_for_task
    from skinlesion.inputs import prepare_for_classifier
    from skinlesion.models import (build_classifier, freeze_through, initialise_backbone,
                                   set_batchnorm_momentum, sha256_of, write_card)
    from skinlesion.preprocess import parse_steps
    from training.evaluate import classification_metrics

    keras.utils.set_random_seed(args.seed)
    if args.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    classes = task_classes(args.task)
    steps = parse_steps(args.steps)
    samples = read_dataset(args.data)
    if args.limit:
        samples = samples[: args.limit]
    train, val = split_for_task(samples, classes, args.val_fraction, args.seed)
    print(f"{args.task}: {len(train)} train / {len(val)} val images (split by lesion, seed "
          f"{args.seed}); crop {args.crop_mode}, steps {list(steps) or 'none'}", flush=True)

    def arrays(subset, masks, name):
        jobs = [(s.image, mask, steps, args.crop_mode, args.input_size) for s, mask in zip(subset, masks)]
        return cached_arrays(name, prepare_for_classifier, jobs, args.cache_dir, args.workers)[0]

    train_masks = training_masks(train, args.train_masks, args.unet, args.cache_dir, args.seed)
    train_x = arrays(train, train_masks, "clf-train")
    val_x = arrays(val, [s.mask for s in val], "clf-val")
    train_y = np.array([classes.index(s.label) for s in train])
    val_y = np.array([classes.index(s.label) for s in val])
    weights = class_weights(train_y, len(classes), args.class_weight_power)
    print("class weights:", {classes[i]: round(w, 2) for i, w in weights.items()}, flush=True)

    run = RunState(args.run_dir)
    state = run.load() if args.resume else {"epoch": 0, "best": None, "best_epoch": None,
                                            "history": []}
    with distribution_strategy().scope():
        if args.resume and run.last.is_file():
            model = keras.models.load_model(run.last)
            print(f"resumed from {run.last} after epoch {state['epoch']}", flush=True)
        else:
            model = build_classifier(args.arch, len(classes), args.input_size)
            pretrained = args.arch == "mobilenetv2" and args.init != "none"
            copied = initialise_backbone(model, args.init, args.input_size) if pretrained else 0
            frozen = freeze_through(model, args.freeze_through) if pretrained else 0
            print(f"init {args.init}: {copied} layers copied, {frozen} frozen", flush=True)
            model.compile(
                optimizer=keras.optimizers.AdamW(args.lr, weight_decay=WEIGHT_DECAY,
                                                 use_ema=args.ema > 0,
                                                 ema_momentum=args.ema or 0.99),
                loss=keras.losses.CategoricalCrossentropy(label_smoothing=LABEL_SMOOTHING),
                weighted_metrics=[])

    set_batchnorm_momentum(model, BATCHNORM_MOMENTUM)  # also on --resume

    def evaluate(current):
        probabilities = current.predict(val_x.astype(np.float32), batch_size=64, verbose=0)
        metrics = classification_metrics(val_y, probabilities, classes)
        logs = {"val_balanced_accuracy": metrics["balanced_accuracy"],
                "val_macro_auc": metrics["macro_auc_ovr"] or 0.0}
        if "mel" in classes:
            logs["val_mel_recall"] = metrics["recall"].get("mel", 0.0)
        return logs

    callbacks = [keras.callbacks.SwapEMAWeights()] if args.ema > 0 else []  # val_loss too
    callbacks += [
        keras.callbacks.LearningRateScheduler(cosine_schedule(args.lr, args.epochs)),
        epoch_callback(run, state, "val_balanced_accuracy", "max", evaluate),
        keras.callbacks.EarlyStopping("val_balanced_accuracy", mode="max", patience=args.patience),
    ]
    started = time.time()
    if state["epoch"] < args.epochs:
        model.fit(make_pipeline(train_x, train_y, len(classes), args.batch_size, True, args.seed, weights),
                  validation_data=make_pipeline(val_x, val_y, len(classes), 64, False, args.seed),
                  epochs=args.epochs, initial_epoch=state["epoch"], callbacks=callbacks, verbose=2)
    train_minutes = (time.time() - started) / 60
    state = run.load()
    best = keras.models.load_model(run.best, compile=False)  # no optimizer state in the shipped file
    if args.mixed_precision:  # ship a float32 model whatever the training policy was
        keras.mixed_precision.set_global_policy("float32")
        shipped = build_classifier(args.arch, len(classes), args.input_size)
        shipped.set_weights(best.get_weights())
        best = shipped
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    best.save(args.out)

    from skinlesion.classify import tta_probabilities
    probabilities = tta_probabilities(lambda x: best.predict(x, batch_size=64, verbose=0), val_x,
                                      TEST_TIME_AUGMENTATION)
    metrics = classification_metrics(val_y, probabilities, classes)
    card = {
        "task": f"classification-{args.task}",
        "name": f"{args.arch} lesion classifier, {len(classes)} classes",
        "version": time.strftime("%Y-%m-%d"),
        "arch": args.arch,
        "classes": [{"code": c, "name": DISPLAY_NAMES[c]} for c in classes],
        "input_size": {"height": args.input_size, "width": args.input_size},
        "input": "RGB uint8 0-255 (scaled to [-1, 1] inside the model)",
        "output": "softmax probabilities; the Dense layer 'logits' feeds Grad-CAM",
        "preprocessing": list(steps),
        "crop_mode": args.crop_mode,
        "training_masks": {"truth": "ground-truth masks", "unet": "the U-Net's masks (as at serving)",
                           "mixed": "ground-truth or U-Net mask, half each"}[args.train_masks],
        "training_masks_unet_sha256": None if args.train_masks == "truth" else sha256_of(args.unet),
        "test_time_augmentation": TEST_TIME_AUGMENTATION,
        "data": {"source": str(args.data), "train_images": len(train), "val_images": len(val),
                 "train_class_counts": {c: int((train_y == i).sum()) for i, c in enumerate(classes)},
                 "dataset": "HAM10000 (Tschandl et al. 2018), CC BY-NC 4.0"},
        "split": {"method": "by lesion_id, stratified by class, over all classes, then the "
                            "task's classes kept", "val_fraction": args.val_fraction, "seed": args.seed},
        "init": args.init,
        "note": args.note or None,
        "training": {"class_weights": {classes[i]: round(w, 3) for i, w in weights.items()},
                     "label_smoothing": LABEL_SMOOTHING, "batch_size": args.batch_size,
                     "lr": args.lr, "schedule": "warm-up + cosine", "optimizer": "AdamW",
                     "weight_average_momentum": args.ema or None,
                     "augmentation": "flips, rot90, rotation, zoom, brightness/contrast/"
                                     "saturation/hue"},
        "epochs": {"trained": state["epoch"], "best": state["best_epoch"], "max": args.epochs},
        "training_minutes_this_run": round(train_minutes, 1),
        "training_minutes_all_epochs": round(sum(h["seconds"] for h in state["history"]) / 60, 1),
        "history": state["history"],
        "validation_metrics": {"ground_truth_mask_crops": metrics},
        "referral": referral_threshold(val_y, probabilities, classes, MELANOMA_SENSITIVITY)
        if "mel" in classes else None,
    }
    write_card(args.out, card)
    print(f"wrote {args.out}: balanced accuracy {metrics['balanced_accuracy']}, "
          f"macro AUC {metrics['macro_auc_ovr']}", flush=True)


if __name__ == "__main__":
    main()
