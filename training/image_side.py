"""The resolution a classifier learnt from, written into its card.

    python -m training.image_side --model models/classifier_7class.h5 \
        --data ../shared/data/ham10000 --write

The training images in ../shared are small (HAM10000 at 200x150), so the classifier learnt
lesions from about a hundred pixels enlarged to its input. Another clinic's camera gives
several times more pixels across the same lesion, shrunk to the same input: finer texture
than the classifier ever saw, and a different verdict (on derm7pt's 384x384 images the
shipped 7-class model called a quarter of the nevi benign keratoses;
docs/evaluation/other_clinics.md, "Resolution"). The card's "max_image_side" is the median
longer side of the training images; training, evaluation and serving shrink any larger
image to it before the classifier's preprocessing and crop (skinlesion.inputs). Rerun
whenever a classifier is retrained, with the data folders it was trained on
(train_classifier records it itself).
"""
import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def image_sides(samples):
    """The longer side in pixels of each sample's image as training loads it (read from the
    file's header; a squashed source's restored size)."""
    from skinlesion.imageio import image_dimensions
    return np.array([max(sample.resize_to or image_dimensions(str(sample.image))) for sample in samples])


def max_image_side_entry(sides):
    """The card's "max_image_side" section from the training images' longer sides."""
    low, high = np.percentile(sides, [5, 95])
    return {"pixels": int(round(float(np.median(sides)))),
            "basis": (f"median longer side of the {len(sides)} training images (5th-95th percentile "
                      f"{low:.0f}-{high:.0f} px); a larger image is shrunk to it before the "
                      "classifier's preprocessing and crop"),
            "measured_by": "python -m training.image_side"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a classifier .h5 with its JSON card")
    p.add_argument("--data", nargs="+", required=True, help="the data folders it was trained on")
    p.add_argument("--write", action="store_true", help="write the result into the card")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from skinlesion.cards import read_card, write_card
    from skinlesion.classes import task_classes
    from training.datasets import split_sources
    card = read_card(args.model)
    split = card["split"]
    classes = task_classes(card["task"].removeprefix("classification-"))
    train, _ = split_sources(args.data, classes, split["val_fraction"], split["seed"])
    entry = max_image_side_entry(image_sides(train))
    print(entry)
    if args.write:
        card["max_image_side"] = entry
        write_card(args.model, card)
        print(f"wrote max_image_side into {args.model}'s card; rerun training.fit_reliability and "
              "training.evaluate --update-card: the classifier's inputs changed")


if __name__ == "__main__":
    main()
