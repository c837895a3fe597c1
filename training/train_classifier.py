"""Train a lesion classifier (MobileNetV2 or a plain Conv2D baseline) on lesion crops.

    python -m training.train_classifier --task 7class --arch mobilenetv2 \
        --init ../shared/weights/dog_breed_mobilenetv2.h5 \
        --data ../shared/data/ham10000 ../shared/data/isic2017 --augment other_clinic

Several data folders train one model: each is split on its own (by lesion where it
knows lesions), validation is their pooled validation splits, and each source's share
of a class can be evened out (--source-balance).

The classifier sees the region the crop mode selects, cut with the lesion mask (the
ground-truth mask in training, the U-Net's at serving). Checkpoints every epoch in
--run-dir; --resume continues from the last one.
"""
import argparse
import time
from collections import Counter
from pathlib import Path

import numpy as np

from skinlesion.cards import SEGMENTER_FILE, classifier_file
from training.common import (add_determinism_argument, cached_arrays, class_weights, configure_threads,
                             fit_best, label_set_crossentropy, seed_training, ship, training_record)

# --- settings (each one is also a flag) -----------------------------------------------
DATA = ["../shared/data/ham10000"]
TASK = "7class"
ARCH = "mobilenetv2"
INIT = "none"
FREEZE_THROUGH = "block_5_add"  # early blocks kept at their initial weights (CPU budget)
CROP_MODE = "crop"
TRAIN_MASKS = "truth"  # which masks cut the training crops: truth | unet | mixed (half each)
UNET = f"models/{SEGMENTER_FILE}"
STEPS = "color_constancy"
INPUT_SIZE = 160
EPOCHS = 30
BATCH_SIZE = 32
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 1e-4
EMA_MOMENTUM = 0.995  # weight averaging over ~200 steps; the average is evaluated and shipped
PATIENCE = 7
CLASS_WEIGHT_POWER = 1.0  # 1: fully inverse-frequency; 0.5: square root
SOURCE_BALANCE = 0.5  # within a class, weight each source by (its share)^-power: 0 off, 1 equal
AUGMENT = "basic"  # basic | lamp | other_clinic | framing | optics (training/augment.py)
LABEL_SETS = "all"  # source: a source's images are scored only among the classes it has
LABEL_SMOOTHING = 0.05
MIXUP = 0.0  # alpha of mixup's Beta(alpha, alpha) blend share (0: off)
TEACHERS = []  # classifier files whose averaged probabilities the model also learns from
DISTILLATION = 0.7  # with teachers: the teachers' share of the loss, the labels' is the rest
FILL_MODE = "reflect"  # corners of rotated/zoomed crops in basic, lamp, optics (training/augment.py)
MAX_IMAGE_SIDE = "median"  # larger images shrunk to the training images' median side (image_side.py)
VAL_FRACTION = 0.15
SEED = 42  # the split's seed; --train-seed varies the training alone
CACHE_DIR = "runs/cache"
TEST_TIME_AUGMENTATION = "flip4"  # views averaged at validation and serving (classify.py)


def parse_args(argv=None):
    from skinlesion.classes import TASKS
    from skinlesion.flips import TTA_MODES
    from training.builders import CLASSIFIER_BUILDERS
    from skinlesion.regions import CROP_MODES
    from training.augment import RECIPE_DESCRIPTIONS
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", nargs="+", default=DATA, help="one or more data folders")
    p.add_argument("--task", default=TASK, choices=sorted(TASKS))
    p.add_argument("--arch", default=ARCH, choices=sorted(CLASSIFIER_BUILDERS))
    p.add_argument("--init", default=INIT, help="imagenet | none | PATH to a Keras model")
    p.add_argument("--crop-mode", default=CROP_MODE, choices=CROP_MODES)
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
    p.add_argument("--source-balance", type=float, default=SOURCE_BALANCE,
                   help="within each class, weight sources by their share to this power (0: off)")
    p.add_argument("--augment", default=AUGMENT, choices=sorted(RECIPE_DESCRIPTIONS))
    p.add_argument("--label-smoothing", type=float, default=LABEL_SMOOTHING)
    p.add_argument("--fill-mode", default=FILL_MODE, choices=["reflect", "nearest"],
                   help="how the basic geometry (basic, lamp, optics) fills a rotated or zoomed "
                        "crop's corners; framing and other_clinic extend the nearest colour of masked crops")
    p.add_argument("--mixup", type=float, default=MIXUP,
                   help="blend each training image with another, share ~ Beta(alpha, alpha) (0: off)")
    p.add_argument("--teacher", nargs="+", default=TEACHERS, metavar="MODEL",
                   help="distil these classifiers (same classes, crop mode, preprocessing and "
                        "image side): their probabilities, averaged over them and their test-time "
                        "views on each training crop, are a second target")
    p.add_argument("--distill", type=float, default=DISTILLATION,
                   help="with --teacher: the teachers' share of the loss (0-1)")
    p.add_argument("--max-image-side", default=MAX_IMAGE_SIDE, choices=["median", "none"],
                   help="shrink larger images to the training images' median longer side, in "
                        "training and at serving (training.image_side)")
    p.add_argument("--label-sets", default=LABEL_SETS, choices=["all", "source"],
                   help="source: the loss of an image is taken over its source's classes only")
    p.add_argument("--val-fraction", type=float, default=VAL_FRACTION)
    p.add_argument("--seed", type=int, default=SEED, help="seed of the validation split")
    p.add_argument("--train-seed", type=int, default=None,
                   help="seed of initialisation, shuffling and augmentation (default: --seed); "
                        "another value trains another model on the same split")
    p.add_argument("--out", default=None, help="default models/classifier_<task>.h5")
    p.add_argument("--run-dir", default=None, help="default runs/classifier_<task>")
    p.add_argument("--cache-dir", default=CACHE_DIR)
    p.add_argument("--freeze-through", default=FREEZE_THROUGH,
                   help="freeze backbone layers up to this layer name ('' trains all)")
    p.add_argument("--limit", type=int, default=0, help="use only N images (smoke tests)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--mixed-precision", action="store_true", help="float16 compute on GPUs")
    p.add_argument("--tta", default=TEST_TIME_AUGMENTATION, choices=TTA_MODES,
                   help="test-time views averaged at validation and serving (recorded in the card)")
    p.add_argument("--resume", action="store_true")
    add_determinism_argument(p)
    p.add_argument("--note", default="", help="free text recorded in the model card")
    args = p.parse_args(argv)
    args.train_seed = args.seed if args.train_seed is None else args.train_seed
    if not 0.0 <= args.distill <= 1.0:
        p.error("--distill is a share of the loss, from 0 to 1")
    args.distill = args.distill if args.teacher else 0.0
    args.out = args.out or f"models/{classifier_file(args.task)}"
    args.run_dir = args.run_dir or f"runs/classifier_{args.task}"
    return args


def starts_pretrained(args):
    """Whether the run copies a backbone's weights (and then freezes its early layers)."""
    return args.arch == "mobilenetv2" and args.init != "none"


def make_pipeline(images, labels, num_classes, batch_size, training, seed, weights=None,
                  recipe="basic", crop_mode="masked", allowed=None, mixup=0.0, fill_mode=FILL_MODE,
                  taught=None):
    """Batches of (image, [one-hot | allowed classes[ | teachers' probabilities]][, weight]);
    training batches shuffled and augmented, then blended by mixup if `mixup` (its alpha) > 0.
    `allowed`: (N, classes) 0/1, the classes each image's source can have (default: all).
    `taught`: (N, classes), the teachers' probabilities of each image (distillation). fill_mode: the basic
    geometry's filling; "reflect" mirrors the lesion of a masked crop into its corners, which
    serving crops never show (docs/evaluation/other_clinics.md)."""
    import tensorflow as tf
    from training import augment
    allowed = np.ones((len(labels), num_classes), np.float32) if allowed is None else allowed
    targets = np.concatenate([np.eye(num_classes, dtype=np.float32)[labels],
                              np.asarray(allowed, np.float32)]
                             + ([] if taught is None else [np.asarray(taught, np.float32)]), axis=1)
    if not training:
        data = tf.data.Dataset.from_tensor_slices((images, targets))
        return data.map(lambda x, y: (tf.cast(x, tf.float32), y)).batch(batch_size).prefetch(2)
    data = tf.data.Dataset.from_tensor_slices((images, targets, np.asarray(weights, np.float32)))
    data = data.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    geometry = augment.recipe_geometry(recipe, crop_mode, fill_mode)
    if recipe != "basic":  # a random change per image, then batches
        per_image = augment.PER_IMAGE_RECIPES[recipe]
        data = data.map(lambda x, y, w: (per_image(tf.cast(x, tf.float32), geometry), y, w),
                        num_parallel_calls=tf.data.AUTOTUNE)
        data = data.batch(batch_size, drop_remainder=True)
    else:
        def basic(image, target, weight):
            image = geometry(augment.flips(tf.cast(image, tf.float32), square=True), training=True)
            return augment.color_jitter(image), target, weight

        data = data.batch(batch_size, drop_remainder=True).map(basic, num_parallel_calls=tf.data.AUTOTUNE)
    if mixup > 0:
        data = data.map(lambda x, y, w: augment.mixup(x, y, w, num_classes, mixup),
                        num_parallel_calls=tf.data.AUTOTUNE)
    return data.prefetch(tf.data.AUTOTUNE)


def source_counts(samples, classes):
    """{source: {class: count}} in first-seen source order."""
    counts = {}
    for sample in samples:
        counts.setdefault(sample.source, Counter())[sample.label] += 1
    return {source: {c: counter[c] for c in classes if counter[c]} for source, counter in counts.items()}


def sample_weights(samples, labels, num_classes, class_power, source_power):
    """Per-image loss weights: inverse class frequency, then, within each class, each
    source weighted by its share^-source_power (the class's total weight unchanged), so
    that one clinic's many nevi do not teach the model that nevi look like that clinic's."""
    per_class = class_weights(labels, num_classes, class_power)
    weights = np.array([per_class[int(label)] for label in labels], np.float64)
    sources = np.array([s.source for s in samples])
    for label in range(num_classes):
        in_class = labels == label
        names, counts = np.unique(sources[in_class], return_counts=True)
        if source_power <= 0 or len(names) < 2:
            continue
        factors = (counts / counts.sum()) ** -source_power
        factors *= counts.sum() / (factors * counts).sum()
        for name, factor in zip(names, factors):
            weights[in_class & (sources == name)] *= factor
    return weights, per_class


def allowed_classes(samples, classes, label_sets):
    """(N, classes) 0/1: every class ("all"), or the classes the image's source has ("source")."""
    if label_sets == "all":
        return np.ones((len(samples), len(classes)), np.float32)
    present = {}
    for sample in samples:
        present.setdefault(sample.source, set()).add(sample.label)
    return np.array([[c in present[s.source] for c in classes] for s in samples], np.float32)


def teacher_probabilities(paths, crops, classes, steps, crop_mode, max_side, chunk=32):
    """(N, classes): the teachers' probabilities of the training crops, averaged over the
    teachers and each one's test-time views (calibrated where its card has a temperature).
    A teacher must look at a lesion as the student does (classes, crop mode, preprocessing,
    image side); a crop is resized to the teacher's input size when it differs. Small chunks:
    a chunk's test-time views go through the network at once (256 crops took 10 GB)."""
    from skinlesion.classify import load_classifier
    from skinlesion.regions import resize_rgb
    total = np.zeros((len(crops), len(classes)))
    for path in paths:
        teacher = load_classifier(path, "keras")
        seen = (teacher.classes, teacher.crop_mode, tuple(teacher.steps), teacher.max_image_side)
        wanted = (tuple(classes), crop_mode, tuple(steps), max_side)
        if seen != wanted:
            raise SystemExit(f"Teacher {path} looks at lesions otherwise (classes, crop mode, "
                             f"preprocessing, image side: {seen}) than this model ({wanted}).")
        for start in range(0, len(crops), chunk):
            batch = crops[start:start + chunk]
            if batch.shape[1] != teacher.size:
                batch = np.stack([resize_rgb(crop, teacher.size, teacher.size) for crop in batch])
            total[start:start + chunk] += teacher.probabilities(batch)
        print(f"teacher {path}: done", flush=True)
    return (total / len(paths)).astype(np.float32)


def cached_teacher_probabilities(paths, crops, cache_dir, **looks):
    """teacher_probabilities, kept in the cache folder under the teachers' sha256 and a digest
    of the crops: a --resume (or another run on the same crops) does not pass them through
    the teachers again (10-20 minutes on one shared core for 9,175 crops and three teachers)."""
    import hashlib
    from skinlesion.cards import sha256_of
    digest = hashlib.sha256(" ".join(sha256_of(path) for path in paths).encode())
    digest.update(np.ascontiguousarray(crops).data)
    path = Path(cache_dir) / f"teachers-{digest.hexdigest()[:16]}.npy"
    if path.is_file():
        return np.load(path)
    taught = teacher_probabilities(paths, crops, **looks)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, taught)
    return taught


def segmenter_masks(samples, unet_path, folder):
    """The U-Net's mask of every sample, written once as a PNG (None where it found no
    lesion: serving then classifies the whole image, and so does training)."""
    from skinlesion.overlays import save_mask_png
    from skinlesion.inputs import load_sample_image
    from skinlesion.segment import load_segmenter
    segmenter = load_segmenter(unet_path, "keras")
    folder = Path(folder) / f"unet-masks-{segmenter.card['sha256'][:12]}"
    paths = []
    for number, sample in enumerate(samples, 1):
        stem = Path(sample.source or "") / sample.image.stem
        path, empty = folder / f"{stem}.png", folder / f"{stem}.none"
        if not path.is_file() and not empty.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            image = load_sample_image(sample.image, sample.resize_to)
            segmentation = segmenter.segment_image(image)
            if segmentation.found:
                save_mask_png(segmentation.mask, path)
            else:
                empty.touch()
        paths.append(path if path.is_file() else None)
        if number % 1000 == 0:
            print(f"U-Net masks: {number}/{len(samples)}", flush=True)
    return paths


def training_masks(samples, source, unet_path, folder, seed):
    """The mask that cuts each crop, by --train-masks: the true mask, the U-Net's (as at
    serving), or either at random. An image with no true mask always gets the U-Net's."""
    draw = np.random.default_rng(seed).random(len(samples)) < 0.5
    use_unet = [s.mask is None or source == "unet" or (source == "mixed" and chosen)
                for s, chosen in zip(samples, draw)]
    chosen = [s for s, unet in zip(samples, use_unet) if unet]
    predicted = iter(segmenter_masks(chosen, unet_path, folder) if chosen else [])
    return [next(predicted) if unet else s.mask for s, unet in zip(samples, use_unet)]


def classifier_card(args, classes, steps, train, val, train_y, per_class, state, minutes, metrics, by_source,
                    referral, image_side):
    """The model card of a trained classifier (skinlesion.cards writes it beside the model)."""
    from skinlesion.cards import sha256_of
    from skinlesion.classes import DISPLAY_NAMES
    from training.datasets import citation
    from training.augment import BASIC_GEOMETRY_RECIPES, RECIPE_DESCRIPTIONS
    train_counts, val_counts = source_counts(train, classes), source_counts(val, classes)
    return {
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
        "max_image_side": image_side,
        "training_masks": {"truth": "ground-truth masks", "unet": "the U-Net's masks (as at serving)",
                           "mixed": "ground-truth or U-Net mask, half each"}[args.train_masks]
        + (" (the U-Net's where a source has no masks)" if any(s.mask is None for s in train) else ""),
        "training_masks_unet_sha256": (sha256_of(args.unet) if args.train_masks != "truth"
                                       or any(s.mask is None for s in train + val) else None),
        "test_time_augmentation": args.tta,
        "data": {"sources": [{"name": source, "folder": str(folder), "dataset": citation(source),
                              "train_class_counts": train_counts.get(source, {}),
                              "val_class_counts": val_counts.get(source, {})}
                             for source, folder in zip(dict.fromkeys(s.source for s in train + val),
                                                       args.data)],
                 "train_images": len(train), "val_images": len(val),
                 "train_class_counts": {c: int((train_y == i).sum()) for i, c in enumerate(classes)}},
        "split": {"method": "each source on its own: by lesion_id (image id where a source has no "
                            "lesion ids), stratified by class, over all classes, then the task's "
                            "classes kept; validation pools the sources' validation splits",
                  "val_fraction": args.val_fraction, "seed": args.seed},
        "training": {"class_weights": {classes[i]: round(w, 3) for i, w in per_class.items()},
                     "source_balance_power": args.source_balance,
                     "loss": "cross-entropy" + (" over each source's own classes"
                                                if args.label_sets == "source" else ""),
                     "distillation": {"teachers": [{"file": path, "sha256": sha256_of(path)} for path in args.teacher],
                                      "share_of_loss": args.distill,
                                      "targets": "the teachers' probabilities averaged over them and their "
                                                 "test-time views, on each training crop before augmentation"}
                     if args.teacher else None,
                     "frozen_through": args.freeze_through if starts_pretrained(args) else None,
                     "label_smoothing": args.label_smoothing, "mixup_alpha": args.mixup or None,
                     "batch_size": args.batch_size,
                     "lr": args.lr, "seed": args.train_seed, "schedule": "warm-up + cosine", "optimizer": "AdamW",
                     "weight_average_momentum": args.ema or None,
                     "augmentation": f"{args.augment}: {RECIPE_DESCRIPTIONS[args.augment]}"
                                     + (f"; corners filled by {args.fill_mode}"
                                        if args.augment in BASIC_GEOMETRY_RECIPES else "")},
        **training_record(state, minutes, init=args.init, note=args.note, max_epochs=args.epochs,
                           deterministic=args.deterministic),
        "validation_metrics": {"ground_truth_mask_crops": metrics, "by_source": by_source},
        "referral": referral,
    }


def main(argv=None):
    args = parse_args(argv)
    configure_threads(args.threads)
    import keras
    from skinlesion.cards import write_card
    from skinlesion.classes import task_classes
    from skinlesion.classify import tta_probabilities
    from training.datasets import split_sources
    from skinlesion.inputs import prepare_for_classifier
    from training.builders import build_classifier, freeze_through, initialise_backbone
    from skinlesion.preprocess import parse_steps
    from training.metrics import REFERRAL_SENSITIVITY, classification_metrics, referral_threshold
    from training.image_side import image_sides, max_image_side_entry

    seed_training(args.train_seed, args.deterministic)
    if args.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    classes = task_classes(args.task)
    steps = parse_steps(args.steps)
    train, val = split_sources(args.data, classes, args.val_fraction, args.seed, args.limit)
    print(f"{args.task}: {len(train)} train / {len(val)} val images from "
          f"{source_counts(train, classes)} (each source split by lesion, seed {args.seed}); "
          f"crop {args.crop_mode}, steps {list(steps) or 'none'}, augment {args.augment}", flush=True)

    image_side = max_image_side_entry(image_sides(train)) if args.max_image_side == "median" else None
    print(f"max image side: {image_side}", flush=True)

    def arrays(subset, masks, name):
        jobs = [(s.image, mask, steps, args.crop_mode, args.input_size, s.resize_to,
                 image_side and image_side["pixels"]) for s, mask in zip(subset, masks)]
        return cached_arrays(name, prepare_for_classifier, jobs, args.cache_dir, args.workers)[0]

    # Validation crops: the true mask where a source has one, else the U-Net's (as at serving).
    train_x = arrays(train, training_masks(train, args.train_masks, args.unet, args.cache_dir,
                                           args.train_seed), "clf-train")
    val_x = arrays(val, training_masks(val, "truth", args.unet, args.cache_dir, args.seed), "clf-val")
    train_y = np.array([classes.index(s.label) for s in train])
    val_y = np.array([classes.index(s.label) for s in val])
    weights, per_class = sample_weights(train, train_y, len(classes), args.class_weight_power,
                                        args.source_balance)
    print("class weights:", {classes[i]: round(w, 2) for i, w in per_class.items()}, flush=True)
    val_sources = np.array([s.source for s in val])
    allowed = allowed_classes(train, classes, args.label_sets)
    loss_class = label_set_crossentropy()  # registered before --resume loads a checkpoint
    taught = (cached_teacher_probabilities(args.teacher, train_x, args.cache_dir, classes=classes, steps=steps,
                                           crop_mode=args.crop_mode, max_side=image_side and image_side["pixels"])
              if args.teacher else None)

    def build():
        model = build_classifier(args.arch, len(classes), args.input_size)
        pretrained = starts_pretrained(args)
        copied = initialise_backbone(model, args.init, args.input_size) if pretrained else 0
        frozen = freeze_through(model, args.freeze_through) if pretrained else 0
        print(f"init {args.init}: {copied} layers copied, {frozen} frozen", flush=True)
        model.compile(optimizer=keras.optimizers.AdamW(args.lr, weight_decay=WEIGHT_DECAY, use_ema=args.ema > 0,
                                                       ema_momentum=args.ema or 0.99),
                      loss=loss_class(label_smoothing=args.label_smoothing, distillation=args.distill),
                      weighted_metrics=[])
        return model

    def evaluate(current):
        """Pooled validation (the monitored figure) and each source's balanced accuracy."""
        probabilities = current.predict(val_x.astype(np.float32), batch_size=64, verbose=0)
        metrics = classification_metrics(val_y, probabilities, classes)
        logs = {"val_balanced_accuracy": metrics["balanced_accuracy"],
                "val_macro_auc": metrics["macro_auc_ovr"] or 0.0}
        if "mel" in classes:
            logs["val_mel_recall"] = metrics["recall"].get("mel", 0.0)
        for source in dict.fromkeys(val_sources):
            if len(args.data) > 1:
                inside = val_sources == source
                logs[f"val_{source}_balanced_accuracy"] = classification_metrics(
                    val_y[inside], probabilities[inside], classes)["balanced_accuracy"]
        return logs

    best, state, minutes = fit_best(
        build,
        make_pipeline(train_x, train_y, len(classes), args.batch_size, True, args.train_seed, weights,
                      args.augment, args.crop_mode, allowed, args.mixup, args.fill_mode, taught),
        make_pipeline(val_x, val_y, len(classes), 64, False, args.seed),
        "val_balanced_accuracy", evaluate, run_dir=args.run_dir, resume=args.resume, epochs=args.epochs,
        lr=args.lr, patience=args.patience,
        callbacks=[keras.callbacks.SwapEMAWeights()] if args.ema > 0 else [])  # val_loss on the average too
    if args.mixed_precision:  # ship a float32 model whatever the training policy was
        keras.mixed_precision.set_global_policy("float32")
        shipped = build_classifier(args.arch, len(classes), args.input_size)
        shipped.set_weights(best.get_weights())
        best = shipped
    ship(best, args.out)

    probabilities = tta_probabilities(lambda x: best.predict(x, batch_size=64, verbose=0), val_x, args.tta)
    metrics = classification_metrics(val_y, probabilities, classes)
    by_source = {source: classification_metrics(val_y[val_sources == source],
                                                probabilities[val_sources == source], classes)
                 for source in dict.fromkeys(val_sources)}
    referral = (referral_threshold(val_y, probabilities, classes, REFERRAL_SENSITIVITY)
                if "mel" in classes else None)
    write_card(args.out, classifier_card(args, classes, steps, train, val, train_y, per_class, state, minutes,
                                         metrics, by_source, referral, image_side))
    print(f"wrote {args.out}: balanced accuracy {metrics['balanced_accuracy']}, "
          f"macro AUC {metrics['macro_auc_ovr']}", flush=True)


if __name__ == "__main__":
    main()
