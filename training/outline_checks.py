"""How well the outline checks (skinlesion.segment.outline_problems) pick out bad outlines.

    python -m training.outline_checks --model models/unet.h5 --data ../shared/data/ham10000 \
        --out docs/evaluation/unet/outline_checks.json

On the U-Net's own validation lesions (its card's split), through the serving segmenter:
the share of outlines each check flags, and the Jaccard against the drawn masks of the
outlines flagged and of those passed. A check earns its place if what it flags is clearly
worse than what it passes, while it flags few good outlines.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHECKS = {"edge": "image's edge", "large": "of the image", "regions": "separate regions", "flips": "flipped"}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "models" / "unet.h5"))
    parser.add_argument("--data", default="../shared/data/ham10000")
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    from skinlesion.cards import read_card
    from training.datasets import read_dataset, split_by_group
    from skinlesion.imageio import load_image
    from skinlesion.inputs import load_mask
    from skinlesion.segment import jaccard, load_segmenter
    split = read_card(args.model)["split"]
    samples = [s for s in read_dataset(args.data) if s.mask is not None]
    _, val = split_by_group(samples, split["val_fraction"], split["seed"])
    val = val[:args.limit] if args.limit else val
    segmenter = load_segmenter(args.model)
    scores, flags = [], {name: [] for name in CHECKS}
    for sample in val:
        image = load_image(sample.image)
        segmentation = segmenter.segment_image(image)
        truth = load_mask(sample.mask, *image.shape[:2])
        scores.append(jaccard(truth, segmentation.outline) if segmentation.found else 0.0)
        for name, words in CHECKS.items():
            flags[name].append(any(words in problem for problem in segmentation.outline_problems))
    scores = np.array(scores)
    flags = {name: np.array(values) for name, values in flags.items()}
    flagged = np.any(list(flags.values()), axis=0)

    def figures(mask):
        return {"images": int(mask.sum()), "share": round(float(mask.mean()), 4),
                "mean_jaccard": round(float(scores[mask].mean()), 4) if mask.any() else None,
                "share_under_0.65_jaccard": round(float((scores[mask] < 0.65).mean()), 4) if mask.any() else None}

    report = {"images": len(val), "model": args.model, "split": split,
              "any_check": figures(flagged), "passed": figures(~flagged),
              "by_check": {name: figures(mask) for name, mask in flags.items()},
              "bad_outlines_caught": round(float(flagged[scores < 0.65].mean()), 4) if (scores < 0.65).any() else None}
    print(json.dumps(report, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
