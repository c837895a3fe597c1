"""Does the size or JPEG quality of an image change a classifier's answer? Its validation lesions
through the serving pipeline as stored, shrunk, enlarged and recompressed.

    python -m training.resolution_check --model models/classifier_3class.h5 \
        --data ../shared/data/ham10000 ../shared/data/isic2017 ../shared/data/isic_acral --write

The same lesions at another resolution or JPEG quality are the same lesions: a figure that moves
with them is a figure of the copy, not of the model. Each validation image (the card's split) is
analysed as stored (HAM10000 at 384x288), with its longer side shrunk to 200 px (area) and
enlarged to 768 px (bicubic), and re-encoded as JPEG at quality 50; balanced accuracy and
melanoma-vs-nevus AUC of each copy, and the largest change from the stored copy. The issue's
bound: within 0.02 balanced accuracy and 0.01 AUC. --write records the result in the card
("resolution_robustness").
"""
import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BOUNDS = {"balanced_accuracy": 0.02, "melanoma_vs_nevus_auc": 0.01}


def longer_side(image, side):
    """The image with its longer side `side` px (area when shrinking, bicubic when enlarging)."""
    import cv2
    height, width = image.shape[:2]
    scale = side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)


def jpeg(image, quality=50):
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB"))


COPIES = {"as stored": lambda image: image,
          "longer side 200 px": lambda image: longer_side(image, 200),
          "longer side 768 px": lambda image: longer_side(image, 768),
          "JPEG quality 50": jpeg}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a classifier .h5 with its card")
    p.add_argument("--data", nargs="+", required=True, help="the data folders it was trained on")
    p.add_argument("--models", default=str(ROOT / "models"), help="folder with the U-Net (unet.h5)")
    p.add_argument("--limit", type=int, default=0, help="at most N validation images per source")
    p.add_argument("--write", action="store_true", help="record the result in the card")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from skinlesion.cards import card_path, read_card, save_card
    from skinlesion.classify import load_classifier
    from skinlesion.inputs import load_sample_image
    from skinlesion.reliability import calibrated_probabilities
    from training.metrics import classification_metrics, melanoma_vs_nevus_auc
    from training.evaluate import select, serving_pass
    started = time.time()
    classifier = load_classifier(args.model, "keras")
    classes = classifier.classes
    samples = select(args.data, classifier.card, "val", classes)
    if args.limit:
        per_source = {}
        samples = [s for s in samples if per_source.setdefault(s.source, []).append(s) or
                   len(per_source[s.source]) <= args.limit]
    labels = np.array([classes.index(s.label) for s in samples])
    results = {}
    for name, copy in COPIES.items():
        images = (copy(load_sample_image(s.image, s.resize_to)) for s in samples)
        view_logits = serving_pass(classifier, samples, args.models, images=images)["view_logits"]
        probabilities = calibrated_probabilities(view_logits, classifier.temperature)
        metrics = classification_metrics(labels, probabilities, classes)
        results[name] = {"balanced_accuracy": metrics["balanced_accuracy"],
                         "melanoma_vs_nevus_auc": melanoma_vs_nevus_auc(labels, probabilities, classes)}
        print(f"{name}: {results[name]}", flush=True)
    stored = results["as stored"]
    largest = {key: round(max(abs(r[key] - stored[key]) for r in results.values()), 4) for key in BOUNDS}
    record = {"images": len(samples), "sources": sorted({s.source for s in samples}),
              "copies": results, "largest_change": largest, "bounds": BOUNDS,
              "within_bounds": all(largest[key] <= BOUNDS[key] for key in BOUNDS),
              "measured_by": "python -m training.resolution_check", "minutes": round((time.time() - started) / 60, 1)}
    print(f"largest change from the stored copy: {largest} (bounds {BOUNDS})", flush=True)
    if args.write:
        card = read_card(args.model)
        card["resolution_robustness"] = record
        save_card(args.model, card)
        print(f"recorded in {card_path(args.model)}")
    return record


if __name__ == "__main__":
    main()
