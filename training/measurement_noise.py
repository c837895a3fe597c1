"""How much the lesion measurements move when the lesion does not.

    python -m training.measurement_noise --data ../shared/data/ham10000 ../shared/data/derm7pt

Each image is measured as taken and again after a change that leaves the lesion as it was:
a horizontal flip, a vertical flip, and a small re-framing with a brighter lamp (3% cut
from each side, brightness +6%). The change of each measure, through the serving pipeline
(U-Net outline, then skinlesion.measure), is summarised per perturbation and over all of
them; the 95th percentile under re-framing is the noise the compare page uses to tell a change between
two visits from the noise of taking the photograph again. Written into the segmenter's card
(`measurement_noise`), since it belongs to the U-Net and the measuring code together:
rerun whenever either changes.
"""
import argparse
import json
from datetime import date
from pathlib import Path

import numpy as np

# --- settings -----------------------------------------------------------------------------
DATA = ["../shared/data/ham10000", "../shared/data/derm7pt"]
IMAGES_PER_SOURCE = 100
SEED = 7
CROP = 0.03  # share cut from each side
BRIGHTNESS = 1.06
MODELS = "models"
REVISIT = "crop 3% and brightness +6%"  # the perturbation most like photographing again
# Relative change for sizes and border; absolute change for asymmetry, whose values near
# zero make any relative change look large (0.04 -> 0.05 is +25%).
RELATIVE = ("area_px", "max_diameter_px", "border_irregularity")
ABSOLUTE = ("asymmetry",)


def perturbations(image):
    height, width = image.shape[:2]
    dy, dx = int(height * CROP), int(width * CROP)
    reframed = image[dy:height - dy, dx:width - dx].astype(np.float32) * BRIGHTNESS
    return {"horizontal flip": image[:, ::-1], "vertical flip": image[::-1],
            "crop 3% and brightness +6%": np.clip(reframed, 0, 255).astype(np.uint8)}


def changes(before, after):
    """Per measure: relative change (sizes, border) or absolute change (asymmetry)."""
    out = {key: abs(after[key] / before[key] - 1) for key in RELATIVE if before[key]}
    out.update({key: abs(after[key] - before[key]) for key in ABSOLUTE})
    return out


def summarise(rows):
    keys = RELATIVE + ABSOLUTE
    return {key: {"median": round(float(np.median([r[key] for r in rows if key in r])), 4),
                  "p95": round(float(np.percentile([r[key] for r in rows if key in r], 95)), 4)}
            for key in keys}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", nargs="+", default=DATA)
    p.add_argument("--images-per-source", type=int, default=IMAGES_PER_SOURCE)
    p.add_argument("--models", default=MODELS)
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--no-card", action="store_true", help="print only; do not write the U-Net's card")
    args = p.parse_args(argv)

    from skinlesion.analysis import Analyzer
    from skinlesion.cards import SEGMENTER_FILE, card_path
    from training.datasets import read_dataset
    from skinlesion.inputs import load_sample_image
    from skinlesion.measure import measure_lesion
    analyzer = Analyzer(args.models, tasks=(), runtime="keras")
    rng = np.random.default_rng(args.seed)

    def measured(image):
        segmentation = analyzer.segment(image)
        return measure_lesion(image, segmentation.outline) if segmentation.found else None

    rows, by_kind, counts = [], {}, {}
    for folder in args.data:
        samples = read_dataset(folder, report=lambda *a, **k: None)
        chosen = rng.choice(len(samples), size=min(args.images_per_source, len(samples)), replace=False)
        counts[Path(folder).name] = len(chosen)
        for index in chosen:
            image = load_sample_image(samples[index].image, samples[index].resize_to)
            before = measured(image)
            if before is None:
                continue
            for kind, changed in perturbations(image).items():
                after = measured(changed)
                if after is not None:
                    row = changes(before, after)
                    rows.append(row)
                    by_kind.setdefault(kind, []).append(row)
        print(f"{folder}: {len(chosen)} images", flush=True)

    result = {"date": date.today().isoformat(), "images": counts, "pairs": len(rows),
              "perturbations": {kind: summarise(kind_rows) for kind, kind_rows in by_kind.items()},
              "all": summarise(rows),
              # What the compare page calls noise: the 95th percentile of a re-framed photograph.
              "visit_noise": {key: value["p95"] for key, value in summarise(by_kind[REVISIT]).items()},
              "units": {key: "relative change" for key in RELATIVE} | {key: "absolute change" for key in ABSOLUTE},
              "command": "python -m training.measurement_noise --data " + " ".join(args.data)}
    print(json.dumps(result, indent=1))
    if not args.no_card:
        path = card_path(Path(args.models) / SEGMENTER_FILE)
        card = json.loads(path.read_text())
        card["measurement_noise"] = result
        path.write_text(json.dumps(card, indent=2) + "\n")
        print(f"wrote measurement_noise into {path}")


if __name__ == "__main__":
    main()
