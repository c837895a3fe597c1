"""Set the referral threshold for one clinic's own camera, from its own labelled images.

    python -m training.calibrate DIR --task 7class --sensitivity 0.90 --out site.json

DIR holds one folder per class code (DIR/mel/, DIR/nv/, ...); a few dozen images with at
least MIN_MELANOMAS melanomas. Every image goes through the app's own analysis (images it
refuses are counted and left out); the threshold is the highest malignant probability that
still flags --sensitivity of the melanomas. The file records the threshold, the images
used per class, the sensitivity and share of nevi flagged it reached, the model's sha256
and the date. Use it with `predict.py ... --calibration site.json` or
`SKINLESION_CALIBRATION=site.json python app.py`; a file made for another model is refused.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MIN_MELANOMAS = 5  # below this a sensitivity cannot be set at all
FEW_MELANOMAS = 20  # below this the threshold is noisy: say so


def parse_args(argv=None):
    from skinlesion.classes import TASKS
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", metavar="DIR", help="one folder per class code: DIR/mel, DIR/nv, ...")
    p.add_argument("--task", default="7class", choices=sorted(TASKS))
    p.add_argument("--sensitivity", type=float, default=0.90, help="share of melanomas to flag")
    p.add_argument("--out", required=True, help="the calibration file to write (JSON)")
    p.add_argument("--models", default=str(ROOT / "models"))
    args = p.parse_args(argv)
    if not 0.5 <= args.sensitivity <= 1.0:
        p.error("--sensitivity is a share between 0.5 and 1.0, e.g. 0.90")
    return args


def main(argv=None):
    args = parse_args(argv)
    from skinlesion.analysis import Analyzer
    from training.datasets import DatasetError, read_class_folders
    from skinlesion.imageio import ImageError
    from skinlesion.models import ModelFileError
    from training.metrics import referral_threshold
    try:
        analyzer = Analyzer(args.models, tasks=(args.task,), runtime="keras")
        classifier = analyzer.classifier(args.task)
        samples = read_class_folders(args.folder, classes=classifier.classes)
    except (DatasetError, ModelFileError) as error:
        raise SystemExit(f"error: {error}") from None
    labels, probabilities, refused = [], [], []
    for sample in samples:
        try:
            result = analyzer.analyze(sample.image, args.task, explain=False)
        except ImageError as error:
            refused.append({"image": sample.image.name, "reason": str(error)})
            continue
        labels.append(classifier.classes.index(sample.label))
        probabilities.append([result.probabilities[c] for c in classifier.classes])
    labels, probabilities = np.array(labels), np.array(probabilities)
    melanomas = int((labels == classifier.classes.index("mel")).sum()) if "mel" in classifier.classes else 0
    if melanomas < MIN_MELANOMAS:
        raise SystemExit(f"error: {melanomas} melanomas could be analysed in {args.folder}; at least "
                         f"{MIN_MELANOMAS} are needed to set a sensitivity (a few dozen are better).")
    chosen = referral_threshold(labels, probabilities, classifier.classes, args.sensitivity)
    site = {
        "kind": "Lesion Lens site calibration of the referral threshold",
        "task": args.task, "model_file": Path(classifier.card.get("file", "")).name or None,
        "model_sha256": classifier.card["sha256"], "threshold": chosen["malignant_probability"],
        "sensitivity_target": args.sensitivity,
        "melanoma_sensitivity": chosen["melanoma_sensitivity"],
        "nevi_flagged_share": chosen.get("nevi_flagged_share"),
        "benign_flagged_share": chosen["benign_flagged_share"],
        "images": int(len(labels)),
        "images_per_class": {c: int((labels == i).sum()) for i, c in enumerate(classifier.classes)
                             if (labels == i).any()},
        "images_refused": refused, "folder": Path(args.folder).resolve().name,
        "date": time.strftime("%Y-%m-%d"),
        "shipped_threshold": classifier.referral_threshold,
    }
    if melanomas < FEW_MELANOMAS:
        site["caution"] = (f"Only {melanomas} melanomas: one melanoma moves the sensitivity by "
                           f"{100 / melanomas:.0f} points. Add images and recalibrate.")
    Path(args.out).write_text(json.dumps(site, indent=2) + "\n")
    print(json.dumps({k: v for k, v in site.items() if k != "images_refused"}, indent=1))
    return site


if __name__ == "__main__":
    main()
