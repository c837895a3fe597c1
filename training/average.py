"""An average of classifiers as one model: their probabilities averaged, in one flat graph.

    python -m training.average models/classifier_7class.h5 runs/w1r/classifier_7class.h5 \
        runs/w2r/classifier_7class.h5 --out runs/avg/classifier_7class.h5 --note "..."

Averages of models ranked another clinic's melanomas above its nevi better than their
members every time they were measured (docs/evaluation/other_clinics.md), at one classifier
pass per member. Unlike a soup (`training.soup`), the members need not share a basin, an input
size or training data: the average is `training.builders.build_average`, served, explained and
fitted like any classifier. The members must look at a lesion alike (classes, crop mode,
preprocessing, test-time views, the image side they were trained at) and must not have trained
on one another's validation images (the same split seed and fraction: every source is split on
its own, so HAM10000's validation lesions are those of every model).

The card lists the members (sha256, data, recipe, epochs, their own validation figures) and
leaves out every figure that would be the average's own: measure it with
`training.fit_reliability` and `training.evaluate --update-card`.
"""
import sys
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# What the members must share to be served as one classifier.
MUST_AGREE = ("task", "classes", "preprocessing", "crop_mode", "test_time_augmentation")
# What the card keeps of each member: where it came from and how it was trained.
MEMBER_RECORD = ("name", "version", "arch", "input_size", "init", "note", "data", "training",
                 "training_masks", "epochs", "training_minutes_all_epochs")


def parse_args(argv=None):
    from training.common import combining_args
    return combining_args(argv, __doc__, "average")


def check_members(cards, paths):
    """Refuse members that would be served unlike one another, or whose splits differ."""
    from training.common import refuse_unless_alike

    def described(card):
        split = card.get("split") or {}
        return {**{key: card.get(key) for key in MUST_AGREE},
                "max_image_side": (card.get("max_image_side") or {}).get("pixels"),
                "split seed and validation fraction": (split.get("seed"), split.get("val_fraction"))}

    refuse_unless_alike(paths, [described(card) for card in cards], "average")


def sources_of(card):
    """[(name, dataset)] of the data a member trained on (a one-source card names its folder)."""
    data = card.get("data") or {}
    if "sources" in data:
        return [(source["name"], source.get("dataset")) for source in data["sources"]]
    return [(Path(data.get("source", "unknown")).name, None)]


def average_card(cards, paths, note):
    check_members(cards, paths)
    first = cards[0]
    widest = max(cards, key=lambda card: len(sources_of(card)))  # its split names every source
    size = max(card["input_size"]["height"] for card in cards)
    sources = {}
    for card in cards:
        for name, dataset in sources_of(card):
            sources[name] = sources.get(name) or dataset
    minutes = [card.get("training_minutes_all_epochs") for card in cards]
    return {
        "task": first["task"],
        "name": f"average of {len(cards)} lesion classifiers, {len(first['classes'])} classes",
        "version": date.today().isoformat(),
        "arch": "average of " + " + ".join(f"{card['arch']} {card['input_size']['height']} px" for card in cards),
        "classes": first["classes"],
        "input_size": {"height": size, "width": size},
        "input": "RGB uint8 0-255; each member resizes it to its own input size and scales it inside the model",
        "output": "softmax of 'logits' = the members' mean softmax probabilities; 'logits' (the log of that "
                  "mean) feeds Grad-CAM, summed over the members' last convolutional maps",
        "preprocessing": first["preprocessing"],
        "crop_mode": first["crop_mode"],
        "max_image_side": widest.get("max_image_side"),
        "test_time_augmentation": first.get("test_time_augmentation"),
        "data": {"sources": [{"name": name, "dataset": dataset} for name, dataset in sources.items()],
                 "note": "each member's training data and counts are in 'average.members'"},
        "split": widest["split"],
        "note": note or None,
        "average": {"method": "uniform mean of the members' softmax probabilities (one graph: "
                              "training.builders.build_average)",
                    "members": [{"file": str(path), "sha256": card["sha256"],
                                 **{key: card.get(key) for key in MEMBER_RECORD},
                                 "validation_metrics": card.get("validation_metrics"),
                                 "external_validation": card.get("external_validation")}
                                for path, card in zip(paths, cards)]},
        "training_minutes_all_epochs": round(sum(minutes), 1) if None not in minutes else None,
    }


def main(argv=None):
    args = parse_args(argv)
    from training.common import configure_threads, ship
    configure_threads(args.threads)
    from skinlesion.cards import write_card
    from skinlesion.models import load_checked_model
    from training.builders import build_average
    loaded = [load_checked_model(path) for path in args.models]
    card = average_card([card for _, card in loaded], args.models, args.note)
    ship(build_average([model for model, _ in loaded]), args.out)
    write_card(args.out, card)
    print(f"wrote {args.out}: the average of {len(loaded)} classifiers")
    return card


if __name__ == "__main__":
    main()
