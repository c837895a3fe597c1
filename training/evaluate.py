"""Evaluate a segmenter or classifier on data folders: metrics as JSON plus PNG plots.

    python -m training.evaluate --model models/unet.h5 --data DIR --out reports/unet
    python -m training.evaluate --model models/classifier_7class.h5 --data DIR [DIR ...] \
        --out reports/c7 [--split val] [--external DIR ...] [--update-card]

--split val keeps each folder's validation split as the card records it (by lesion).
--external folders (another clinic's labelled images, e.g. ../shared/data/derm7pt) are
evaluated whole through the serving pipeline, at the card's referral threshold: melanoma-
vs-nevus AUC, melanoma sensitivity and nevi flagged, balanced accuracy over the classes
present, ECE and the plots. The classifier runs as served: calibrated by the temperature
its card names, if any (training.fit_reliability sets it, and the referral threshold).

Classifier plots: ROC per class with AUC, confusion matrix, reliability diagram.
Segmenter plots: Jaccard histogram.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from skinlesion.cards import SEGMENTER_FILE  # noqa: E402
from skinlesion.imageio import load_image  # noqa: E402
from skinlesion.inputs import load_mask  # noqa: E402
from skinlesion.preprocess import preprocess  # noqa: E402
from skinlesion.segment import jaccard  # noqa: E402 (one Jaccard for serving checks and evaluation)
from training.metrics import (calibration, classification_metrics, melanoma_vs_nevus_auc,  # noqa: E402
                              referral_figures, segmentation_metrics)
from training.plots import plot_confusion, plot_jaccard_histogram, plot_reliability, plot_roc  # noqa: E402


def segment_jaccards(model, samples, steps, input_shape, batch_size=32):
    """Per-image Jaccard at the image's own size, through the serving code path."""
    from skinlesion.runtime import keras_graphs
    from skinlesion.segment import Segmenter, probability_to_mask
    card = {"input_size": {"height": input_shape[0], "width": input_shape[1]},
            "preprocessing": list(steps)}
    segmenter = Segmenter(keras_graphs(model, card))
    scores = []
    for start in range(0, len(samples), batch_size):
        chunk = samples[start:start + batch_size]
        images = [preprocess(load_image(s.image), steps) for s in chunk]
        probabilities = segmenter.probability(images)
        for sample, image, probability in zip(chunk, images, probabilities):
            height, width = image.shape[:2]
            predicted = probability_to_mask(probability, height, width)
            scores.append(jaccard(load_mask(sample.mask, height, width), predicted))
    return np.array(scores)


def evaluate_segmenter(model, samples, steps, input_shape):
    return segmentation_metrics(segment_jaccards(model, samples, steps, input_shape))


# --- command line -----------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a .h5 model with its JSON card")
    p.add_argument("--data", required=True, nargs="+",
                   help="data folders (any layout read_dataset knows), pooled")
    p.add_argument("--out", required=True, help="folder for metrics.json and the plots")
    p.add_argument("--split", choices=["all", "val"], default="all",
                   help="val: only the validation split recorded in the card (each folder by lesion)")
    p.add_argument("--pipeline", choices=["serving", "ground-truth"], default="serving",
                   help="classifier crops from the U-Net's mask (serving) or the true mask")
    p.add_argument("--external", nargs="*", default=[],
                   help="classifier: other clinics' labelled folders, evaluated whole (serving)")
    p.add_argument("--models", default=str(ROOT / "models"), help="folder with unet.h5 (serving)")
    p.add_argument("--update-card", action="store_true",
                   help="also record the metrics in the model's card (with --split val)")
    return p.parse_args(argv)


def summary_of(metrics):
    """Metrics as a card keeps them: the reliability bins reduced to the ECE."""
    summary = {k: v for k, v in metrics.items() if k != "reliability"}
    summary["expected_calibration_error"] = metrics.get("reliability", {}).get("expected_calibration_error")
    return summary


def record_in_card(model_path, metrics, key, external=None):
    """Add evaluation results to a model's card; the model file (and its sha256) is untouched."""
    from skinlesion.cards import read_card, save_card
    card = read_card(model_path)
    card.setdefault("validation_metrics", {})[key] = summary_of(metrics)
    if external:
        card["external_validation"] = {name: summary_of(m) for name, m in external.items()}
    save_card(model_path, card)


def select(folders, card, split, classes=None):
    """All samples of the folders, or each folder's validation split as in training."""
    from training.datasets import read_dataset, split_by_group, split_sources
    if split == "all":
        return [s for folder in folders for s in read_dataset(folder)
                if classes is None or s.label in classes]
    settings = card["split"]
    if classes is None:
        return [s for folder in folders for s in
                split_by_group(read_dataset(folder), settings["val_fraction"], settings["seed"])[1]]
    return split_sources(folders, classes, settings["val_fraction"], settings["seed"])[1]


def serving_pass(classifier, samples, models_dir, images=None, screen_inputs=False):
    """Every image through the serving path (U-Net mask -> crop -> classifier), keeping what
    calibration and the reliability checks need: the view logits (views, N, classes), the
    pooled features of the crop, whether a lesion was found and, with `screen_inputs`, what
    the dermoscopy gate reads (whole-image features, taken in the crop's pass as at serving;
    colourfulness).
    `images`: decoded images instead of the samples' files (for generated test sets)."""
    from skinlesion.inputs import load_sample_image
    from skinlesion.reliability import colourfulness
    from skinlesion.segment import load_segmenter
    segmenter = load_segmenter(Path(models_dir) / SEGMENTER_FILE, "keras")
    rows = {"view_logits": [], "features": [], "image_features": [], "found": [], "colourfulness": []}
    sources = images if images is not None else (load_sample_image(s.image, s.resize_to) for s in samples)
    for image in sources:
        segmentation = segmenter.segment_image(image)
        prepared = classifier.prepare(image)
        crop = classifier.input_for(prepared, segmentation.mask if segmentation.found else None)
        whole = classifier.whole_input(prepared) if screen_inputs else None
        view_logits, features, image_features = classifier.outputs(crop[None], whole)
        rows["view_logits"].append(view_logits[:, 0])
        rows["features"].append(features[0])
        rows["found"].append(segmentation.found)
        if screen_inputs:
            rows["image_features"].append(image_features[0])
            rows["colourfulness"].append(colourfulness(image))
    outputs = {key: np.array(value) for key, value in rows.items() if value}
    outputs["view_logits"] = np.stack(rows["view_logits"], axis=1)  # (views, N, classes)
    return outputs


def classify_serving(classifier, samples, models_dir):
    """Calibrated probabilities through the full serving path."""
    from skinlesion.reliability import calibrated_probabilities
    view_logits = serving_pass(classifier, samples, models_dir)["view_logits"]
    return calibrated_probabilities(view_logits, classifier.temperature)


def classify_ground_truth(classifier, samples, batch_size=64):
    """Probabilities on crops cut with the ground-truth masks (as in training)."""
    from skinlesion.inputs import prepare_for_classifier
    rows = []
    for start in range(0, len(samples), batch_size):
        inputs = [prepare_for_classifier(s.image, s.mask, classifier.steps, classifier.crop_mode,
                                         classifier.size, s.resize_to, classifier.max_image_side)
                  for s in samples[start:start + batch_size]]
        rows.append(classifier.probabilities(np.stack(inputs)))
    return np.concatenate(rows)


def write_probabilities(samples, probabilities, classes, path):
    """Per-image probabilities (for ensembles and error analysis without re-running)."""
    import csv
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "source", "label"] + [f"p_{code}" for code in classes])
        for sample, row in zip(samples, probabilities):
            writer.writerow([sample.image.stem, sample.source, sample.label] + [f"{p:.6f}" for p in row])


def classifier_report(labels, probabilities, classes, out):
    """Metrics, calibration, melanoma-vs-nevus AUC and the three plots in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    metrics = classification_metrics(labels, probabilities, classes)
    metrics["melanoma_vs_nevus_auc"] = melanoma_vs_nevus_auc(labels, probabilities, classes)
    metrics["reliability"] = calibration(labels, probabilities)
    plot_roc(labels, probabilities, classes, out / "roc.png")
    plot_confusion(labels, probabilities, classes, out / "confusion.png")
    plot_reliability(metrics["reliability"], out / "reliability.png")
    return metrics


def evaluate_classifier_cli(args, classifier, out):
    """Returns (metrics, {external source: metrics})."""
    card, classes = classifier.card, classifier.classes
    samples = select(args.data, card, args.split, classes)
    labels = np.array([classes.index(s.label) for s in samples])
    if args.pipeline == "serving":
        probabilities = classify_serving(classifier, samples, args.models)
    else:
        probabilities = classify_ground_truth(classifier, samples)
    metrics = classifier_report(labels, probabilities, classes, out)
    write_probabilities(samples, probabilities, classes, out / "probabilities.csv")
    sources = np.array([s.source for s in samples])
    if len(set(sources)) > 1:  # the figures above pool the sources; each one's own here
        metrics["pooled_sources"] = list(dict.fromkeys(sources))
        metrics["by_source"] = {source: summary_of(classification_metrics(
            labels[sources == source], probabilities[sources == source], classes))
            for source in dict.fromkeys(sources)}
    external = {folder: evaluate_external(classifier, folder, args.models, out) for folder in args.external}
    return metrics, {report["source"]: report for report in external.values()}


def evaluate_external(classifier, folder, models_dir, out):
    """Another clinic's labelled folder, whole, through the serving pipeline, at the card's
    referral threshold; plots and per-image probabilities under out/external/<source>/."""
    from training.datasets import read_dataset
    classes = classifier.classes
    found = read_dataset(folder, classes=classes)
    found_labels = np.array([classes.index(s.label) for s in found])
    found_probabilities = classify_serving(classifier, found, models_dir)
    name = found[0].source
    report = classifier_report(found_labels, found_probabilities, classes, out / "external" / name)
    write_probabilities(found, found_probabilities, classes, out / "external" / name / "probabilities.csv")
    threshold = classifier.referral_threshold
    report["referral"] = (referral_figures(found_labels, found_probabilities, classes, threshold)
                          if threshold is not None else None)
    report.update(source=name, data=str(folder), pipeline="serving", split="all")
    return report


def evaluate_segmenter_cli(args, model, card, out):
    samples = [s for s in select(args.data, card, args.split) if s.mask is not None]
    if not samples:
        raise SystemExit(f"{args.data}: no images with lesion masks to evaluate a segmenter on.")
    shape = (card["input_size"]["height"], card["input_size"]["width"])
    jaccards = segment_jaccards(model, samples, tuple(card["preprocessing"]), shape)
    plot_jaccard_histogram(jaccards, out / "jaccard_histogram.png")
    return segmentation_metrics(jaccards)


def main(argv=None):
    args = parse_args(argv)
    from skinlesion.classify import load_classifier
    from skinlesion.cards import ModelFileError, read_card
    from skinlesion.models import load_checked_model
    if args.update_card and args.split != "val":
        raise SystemExit("--update-card records validation metrics: use it with --split val.")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    external = {}
    try:
        card = read_card(args.model)
        if card["task"] == "segmentation":
            model, card = load_checked_model(args.model)
            metrics = evaluate_segmenter_cli(args, model, card, out)
        else:
            metrics, external = evaluate_classifier_cli(args, load_classifier(args.model, "keras"), out)
    except ModelFileError as error:
        raise SystemExit(f"error: {error}") from None
    metrics.update(model=str(args.model), data=[str(d) for d in args.data], split=args.split,
                   pipeline=args.pipeline if card["task"] != "segmentation" else None)
    if args.update_card:
        key = "segmentation" if card["task"] == "segmentation" else f"{args.pipeline.replace('-', '_')}_pipeline"
        record_in_card(args.model, metrics, key, external)
    if external:
        metrics["external_validation"] = external
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    shown = {k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}
    for name, report in external.items():
        shown[name] = {k: report[k] for k in ("balanced_accuracy", "melanoma_vs_nevus_auc")}
        shown[name].update(report["referral"] or {})
    print(json.dumps(shown, indent=1))
    return metrics


if __name__ == "__main__":
    main()
