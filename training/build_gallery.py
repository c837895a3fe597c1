"""Build the reference gallery of similar confirmed cases for one classifier, and measure it.

    python -m training.build_gallery --model models/classifier_7class.h5

Rerun it whenever the classifier changes (a gallery is refused by any other model). Settings
at the top; in order:
1. the gallery: from each source's training split (the model card's split), up to
   PER_CLASS_SOURCE lesions of every class, one image per lesion, only images whose licence is
   known per image or for the whole set (HAM10000: CC BY-NC 4.0; isic_acral: per image; ISIC
   2017's images carry no per-image licence here, so none are taken);
2. their features through the serving pipeline (U-Net crop, the classifier's pooled
   features), written to models/gallery_<task>.npz with a card (.json) naming the model's sha256;
3. thumbnails (THUMB_SIDE px, JPEG) in static/gallery/, shared by every task's gallery;
4. usefulness: on each source's validation lesions (never in the gallery, which holds training
   lesions only) and on derm7pt, how often the majority of the k nearest cases has the true
   diagnosis and the share of the k that do (precision at k), per class, beside the
   classifier's own recall; written into the card.
"""
import argparse
import csv
import json
import sys
import time
import zlib
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# --- settings ---------------------------------------------------------------------------
GALLERY_SOURCES = ["../shared/data/ham10000", "../shared/data/isic_acral"]
EVALUATE_ON = ["../shared/data/ham10000", "../shared/data/isic_acral"]  # their validation splits
EXTERNAL = ["../shared/data/derm7pt"]  # every image: another clinic
PER_CLASS_SOURCE = 150
THUMB_SIDE = 192
THUMB_QUALITY = 80
K = 8
SEED = 0
# Whole-set licences and the short attribution shown under each case (the page cites the set in
# full once); isic_acral's come per image from its labels.csv.
LICENCES = {"ham10000": ("HAM10000 (Tschandl et al. 2018)", "CC BY-NC 4.0")}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--models", default=str(ROOT / "models"), help="folder with unet.h5")
    p.add_argument("--sources", nargs="+", default=GALLERY_SOURCES)
    p.add_argument("--evaluate-on", nargs="*", default=EVALUATE_ON)
    p.add_argument("--external", nargs="*", default=EXTERNAL)
    p.add_argument("--per-class-source", type=int, default=PER_CLASS_SOURCE)
    p.add_argument("--thumbs", default=str(ROOT / "static" / "gallery"))
    p.add_argument("--out", default=None, help="default: models/gallery_<task>.npz")
    p.add_argument("--k", type=int, default=K)
    return p.parse_args(argv)


def per_image_licences(folder):
    """{image id: (attribution, licence)} from a labels.csv that has them, else {}."""
    path = Path(folder) / "labels.csv"
    if not path.is_file():
        return {}
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "licence" not in rows[0]:
        return {}
    return {row["image_id"]: (row.get("attribution") or "Anonymous", row["licence"]) for row in rows}


def choose_cases(train, classes, per_class_source, licences, seed=SEED):
    """One image per lesion, at most per_class_source lesions of each (source, class), only
    with a known licence: [(sample, attribution, licence)]."""
    by_key = defaultdict(dict)
    for sample in train:
        if sample.label not in classes:
            continue
        image_id = Path(sample.image).stem
        if sample.source in LICENCES:
            known = LICENCES[sample.source]
        else:
            known = licences.get(sample.source, {}).get(image_id)
        if known:
            by_key[(sample.source, sample.label)].setdefault(sample.group, (sample, *known))
    chosen = []
    for key in sorted(by_key):
        lesions = list(by_key[key].values())
        # Drawn per (source, class) from a seed of its own: every task's gallery takes the same
        # lesions of a class, so the tasks share their thumbnails.
        rng = np.random.default_rng([seed, zlib.crc32("/".join(key).encode())])
        order = rng.permutation(len(lesions))[:per_class_source]
        chosen += [lesions[i] for i in sorted(order)]
    return chosen


def write_thumbnail(sample, folder):
    from PIL import Image

    from skinlesion.inputs import load_sample_image
    image = Image.fromarray(load_sample_image(sample.image, sample.resize_to))
    image.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
    path = Path(folder) / f"{Path(sample.image).stem}.jpg"
    image.save(path, "JPEG", quality=THUMB_QUALITY, optimize=True)
    return path.name


def usefulness(gallery, features, labels, probabilities, classes, k):
    """Per class and overall: kNN majority = truth, precision at k, classifier recall."""
    from skinlesion.similar import majority
    rows = defaultdict(lambda: {"n": 0, "majority_right": 0, "precision_sum": 0.0, "classifier_right": 0})
    for vector, label, probs in zip(features, labels, probabilities):
        found = gallery.nearest(vector, k=k)
        row = rows[label]
        row["n"] += 1
        row["majority_right"] += majority(found) == label
        row["precision_sum"] += sum(case["dx"] == label for case in found) / max(1, len(found))
        row["classifier_right"] += classes[int(np.argmax(probs))] == label
    per_class = {code: {"images": r["n"], "majority_of_k_right": round(r["majority_right"] / r["n"], 4),
                        "precision_at_k": round(r["precision_sum"] / r["n"], 4),
                        "classifier_recall": round(r["classifier_right"] / r["n"], 4)}
                 for code, r in sorted(rows.items())}
    present = list(per_class.values())
    mean = {key: round(float(np.mean([row[key] for row in present])), 4)
            for key in ("majority_of_k_right", "precision_at_k", "classifier_recall")}
    return {"k": k, "per_class": per_class, "mean_over_classes": mean,
            "images": int(sum(row["images"] for row in present))}


def main(argv=None):
    args = parse_args(argv)
    from skinlesion.classify import load_classifier
    from training.datasets import read_dataset, split_sources
    from skinlesion.reliability import calibrated_probabilities
    from skinlesion.similar import Gallery, normalised
    from training.evaluate import serving_pass
    started = time.time()
    model = Path(args.model)
    classifier = load_classifier(model, "keras")
    card = json.loads(model.with_suffix(".json").read_text())
    classes, task = classifier.classes, model.stem.removeprefix("classifier_")
    split = card["split"]
    train, _ = split_sources(args.sources, classes, split["val_fraction"], split["seed"])
    licences = {Path(folder).name: per_image_licences(folder) for folder in args.sources}
    chosen = choose_cases(train, classes, args.per_class_source, licences)
    print(f"gallery: {len(chosen)} lesions", Counter((s.source, s.label) for s, *_ in chosen), flush=True)
    features = serving_pass(classifier, [s for s, *_ in chosen], args.models)["features"]
    Path(args.thumbs).mkdir(parents=True, exist_ok=True)
    cases = [{"image_id": Path(s.image).stem, "lesion_id": s.group, "dx": s.label, "source": s.source,
              "attribution": attribution, "licence": licence, "thumb": write_thumbnail(s, args.thumbs)}
             for s, attribution, licence in chosen]
    out = Path(args.out or Path(args.models) / f"gallery_{task}.npz")
    # Unit length before float16: features of a few units lose nothing that cosine sees.
    np.savez_compressed(out, features=normalised(features).astype(np.float16), cases=np.array(json.dumps(cases)))
    gallery_card = {"task": task, "model": model.name, "model_sha256": card["sha256"],
                    "similarity": "cosine of the classifier's pooled features of the lesion crop (serving pipeline)",
                    "cases": len(cases), "per_source_class": {f"{k[0]}/{k[1]}": v for k, v in sorted(
                        Counter((c["source"], c["dx"]) for c in cases).items())},
                    "from": "each source's training split of the model card's split (seed "
                            f"{split['seed']}), one image per lesion, at most {args.per_class_source} per source and class",
                    "thumbnails": f"static/gallery/<image_id>.jpg, longer side {THUMB_SIDE} px",
                    "built": time.strftime("%Y-%m-%d"), "command": "python -m training.build_gallery " + " ".join(
                        sys.argv[1:] if argv is None else argv)}
    out.with_suffix(".json").write_text(json.dumps(gallery_card, indent=2))
    gallery = Gallery.load(out, card["sha256"])
    measured = {}
    sets = [(Path(f).name + " validation lesions", split_sources([f], classes, split["val_fraction"], split["seed"])[1])
            for f in args.evaluate_on]
    sets += [(Path(f).name + " (another clinic, every image)", [s for s in read_dataset(f) if s.label in classes])
             for f in args.external]
    for name, samples in sets:
        passed = serving_pass(classifier, samples, args.models)
        probabilities = calibrated_probabilities(passed["view_logits"], classifier.temperature)
        measured[name] = usefulness(gallery, passed["features"], [s.label for s in samples], probabilities,
                                    classes, args.k)
        print(name, measured[name]["mean_over_classes"], flush=True)
    gallery_card["usefulness"] = measured
    out.with_suffix(".json").write_text(json.dumps(gallery_card, indent=2))
    size = sum(p.stat().st_size for p in Path(args.thumbs).glob("*.jpg"))
    print(f"wrote {out} ({out.stat().st_size // 1024} KB), thumbnails {size / 2**20:.1f} MB, "
          f"in {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
