"""A model soup: one classifier whose weights are the average of several (Wortsman et al.,
"Model soups", ICML 2022) — an ensemble's robustness, if it carries over, at one model's cost.

    python -m training.soup runs/z1/classifier_7class.h5 runs/z3/classifier_7class.h5 \
        --out runs/soup13/classifier_7class.h5 --note "..."

Averaging weights works only for models that stay in one basin: runs continued from one
trained model (Z3 from Z1 above) are; runs of one recipe from the backbone that differ only
in their training seed were not (their soup scored HAM10000 balanced accuracy 0.63 where each
scored 0.70-0.72; docs/evaluation/other_clinics.md). Whether a soup is a model is for
`training.evaluate` to say. The ingredients must agree on everything their cards
say about input and output (checked). The soup's card copies the first ingredient's, lists
the ingredients, and leaves out every figure that was an ingredient's own (validation and
external figures, referral, calibration, reliability): measure the soup with
`training.evaluate --update-card` and `training.fit_reliability`.
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# What must be equal for weights to be averaged and the soup served like its ingredients.
MUST_AGREE = ("task", "arch", "classes", "input_size", "input", "output", "preprocessing",
              "crop_mode", "test_time_augmentation", "split")
# An ingredient's own figures and history: not the soup's.
OWN_FIGURES = ("validation_metrics", "external_validation", "referral", "calibration", "reliability",
               "history", "epochs", "training_minutes_this_run", "file", "sha256")


def parse_args(argv=None):
    from training.common import combining_args
    return combining_args(argv, __doc__, "soup")


def soup_card(cards, paths, note):
    """The soup's card: the ingredients' common description, the ingredients, no figures."""
    from training.common import refuse_unless_alike
    refuse_unless_alike(paths, [{key: card.get(key) for key in MUST_AGREE} for card in cards], "soup")
    card = {key: value for key, value in cards[0].items() if key not in OWN_FIGURES}
    card["note"] = note or None
    card["soup"] = {"method": "uniform average of the ingredients' weights (batch-norm statistics included)",
                    "ingredients": [{"file": str(path), "sha256": ingredient["sha256"],
                                     "note": ingredient.get("note"),
                                     "seed": ingredient.get("training", {}).get("seed"),
                                     "epochs": ingredient.get("epochs"),
                                     "training_minutes": ingredient.get("training_minutes_all_epochs")}
                                    for path, ingredient in zip(paths, cards)]}
    minutes = [ingredient.get("training_minutes_all_epochs") for ingredient in cards]
    card["training_minutes_all_epochs"] = round(sum(minutes), 1) if None not in minutes else None
    return card


def average_weights(models):
    """The element-wise mean of the models' weights, as a list for set_weights."""
    import numpy as np
    return [np.mean(group, axis=0) for group in zip(*(model.get_weights() for model in models))]


def main(argv=None):
    args = parse_args(argv)
    from training.common import configure_threads, ship
    configure_threads(args.threads)
    from skinlesion.cards import write_card
    from skinlesion.models import load_checked_model
    loaded = [load_checked_model(path) for path in args.models]
    card = soup_card([card for _, card in loaded], args.models, args.note)
    soup = loaded[0][0]
    soup.set_weights(average_weights([model for model, _ in loaded]))
    ship(soup, args.out)
    write_card(args.out, card)
    print(f"wrote {args.out}: the average of {len(loaded)} models' weights")
    return card


if __name__ == "__main__":
    main()
