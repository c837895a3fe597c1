"""Choose the classifier's crop mode and preprocessing steps on the validation split.

Fine-tuning one classifier per variant costs an hour each on two CPU cores, so this
compares variants with a cheap, honest proxy: the frozen initial backbone's pooled
features, a class-balanced logistic regression fitted on the training split, scored
on the lesion-disjoint validation split (balanced accuracy, macro AUC). The variant
that wins here is the one the classifiers are fine-tuned with; the figures go into
docs/evaluation/ablation.json and docs/models.md.

    python -m training.ablate_inputs --init ../shared/weights/dog_breed_mobilenetv2.h5
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np

from training.common import cached_arrays, configure_threads

DATA = "../shared/data/ham10000"
INPUT_SIZE = 128
SEED = 42
VAL_FRACTION = 0.15
# (crop mode, preprocessing steps): crop modes at the default steps, then steps at "crop".
VARIANTS = [
    ("full", "color_constancy"),
    ("crop", "color_constancy"),
    ("masked", "color_constancy"),
    ("crop", "none"),
    ("crop", "contrast,color_constancy"),
    ("crop", "hair_removal,color_constancy"),
]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=DATA)
    p.add_argument("--init", required=True, help="Keras model holding a MobileNetV2 (or imagenet)")
    p.add_argument("--input-size", type=int, default=INPUT_SIZE)
    p.add_argument("--out", default="docs/evaluation/ablation.json")
    p.add_argument("--cache-dir", default="runs/cache")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    return p.parse_args(argv)


def feature_extractor(init, input_size):
    import keras
    from training.builders import build_mobilenet_classifier, initialise_backbone
    model = build_mobilenet_classifier(7, input_size)
    initialise_backbone(model, init, input_size)
    return keras.Model(model.input, model.get_layer("pool").output)


def probe_score(train_features, train_labels, val_features, val_labels, classes):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from training.metrics import classification_metrics
    scaler = StandardScaler().fit(train_features)
    probe = LogisticRegression(C=0.05, class_weight="balanced", max_iter=2000)
    probe.fit(scaler.transform(train_features), train_labels)
    probabilities = probe.predict_proba(scaler.transform(val_features))
    metrics = classification_metrics(val_labels, probabilities, classes)
    return {key: metrics[key] for key in ("balanced_accuracy", "macro_auc_ovr", "recall")}


def main(argv=None):
    args = parse_args(argv)
    configure_threads(args.threads)
    from skinlesion.classes import task_classes
    from training.datasets import read_dataset, split_by_group
    from skinlesion.inputs import prepare_for_classifier
    from skinlesion.preprocess import parse_steps

    classes = task_classes("7class")
    train, val = split_by_group(read_dataset(args.data, classes=classes), VAL_FRACTION, SEED)
    train_y = np.array([classes.index(s.label) for s in train])
    val_y = np.array([classes.index(s.label) for s in val])
    extractor = feature_extractor(args.init, args.input_size)
    results = []
    for crop_mode, step_text in VARIANTS:
        started = time.time()
        steps = parse_steps(step_text)

        def features(subset, name):
            jobs = [(s.image, s.mask, steps, crop_mode, args.input_size) for s in subset]
            images = cached_arrays(name, prepare_for_classifier, jobs, args.cache_dir, args.workers)[0]
            return extractor.predict(images.astype(np.float32), batch_size=64, verbose=0)

        score = probe_score(features(train, "clf-train"), train_y, features(val, "clf-val"), val_y,
                            classes)
        results.append({"crop_mode": crop_mode, "steps": list(steps), **score})
        print(f"{crop_mode:7s} {step_text:30s} balanced accuracy {score['balanced_accuracy']:.4f} "
              f"macro AUC {score['macro_auc_ovr']:.4f} ({time.time() - started:.0f}s)", flush=True)
    report = {"method": __doc__.split("\n\n")[1].replace("\n", " "), "init": args.init,
              "input_size": args.input_size, "train_images": len(train), "val_images": len(val),
              "split": {"method": "by lesion_id", "seed": SEED}, "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}", flush=True)


if __name__ == "__main__":
    main()
