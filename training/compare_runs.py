"""One table of training runs, each on its own validation data and on other clinics.

    python -m training.compare_runs runs/eval/r0 runs/eval/r1 runs/eval/r0+runs/eval/r1 [--markdown table.md]

Each argument is an output folder of `training.evaluate --split val --external ...`
(its per-image probabilities.csv files; the run's card gives what was trained), or several
joined by '+': the average of their probabilities, an ensemble measured without running it.
Figures: balanced accuracy and macro AUC on HAM10000 validation lesions (serving pipeline), balanced accuracy on the
other validation sources, and per external set the melanoma-vs-nevus AUC, balanced
accuracy over its classes, ECE, and melanoma sensitivity / nevi flagged at the run's own
referral threshold (chosen on its pooled validation images for 90% melanoma sensitivity:
the same rule for every run, from the per-image probabilities evaluate wrote), and at the
every-source rule (the lowest of the sources' own 90% thresholds). With --against RUN, each
external AUC's change from RUN's, with a paired-bootstrap 95% interval: is a gain more than
the luck of which images the set happens to hold?
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _percent(value):
    return "–" if value is None else f"{value:.0%}"


def _figure(value):
    return "–" if value is None else f"{value:.3f}"


def read_images(path):
    """(labels, probabilities, classes, rows) from an evaluate probabilities.csv; rows keep
    each image's name and source."""
    import csv
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    classes = tuple(column[2:] for column in rows[0] if column.startswith("p_"))
    labels = np.array([classes.index(row["label"]) for row in rows])
    return labels, np.array([[float(row[f"p_{c}"]) for c in classes] for row in rows]), classes, rows


def read_average(folders, relative="probabilities.csv"):
    """(labels, probabilities, classes, sources) of one run, or of the average of several runs'
    probabilities (an ensemble evaluated without running it): the runs must have scored the
    same images, in the same order, over the same classes."""
    runs = [read_images(Path(folder) / relative) for folder in _as_list(folders)]
    labels, _, classes, rows = runs[0]
    for other_labels, _, other_classes, other_rows in runs[1:]:
        if other_classes != classes or [r["image"] for r in other_rows] != [r["image"] for r in rows]:
            raise SystemExit(f"{relative}: the runs {folders} did not score the same images and classes; "
                             "evaluate them on the same data and split to average them.")
    probabilities = np.mean([run[1] for run in runs], axis=0)
    return labels, probabilities, classes, np.array([row["source"] for row in rows])


def _as_list(folders):
    return [folders] if isinstance(folders, (str, Path)) else list(folders)


def referral_on_external(folders, external_name, rule):
    """Every run's flag chosen alike (`rule`, evaluate.REFERRAL_RULES, for 90% melanoma
    sensitivity on its own validation images, serving pipeline), applied to the external set.
    `folders`: one run's evaluate output, or several runs' to average."""
    from training.metrics import REFERRAL_SENSITIVITY, referral_by_rule, referral_figures
    labels, probabilities, classes, sources = read_average(folders)
    chosen = referral_by_rule(labels, probabilities, sources, classes, REFERRAL_SENSITIVITY, rule)
    labels, probabilities, classes, _ = read_average(folders, f"external/{external_name}/probabilities.csv")
    return referral_figures(labels, probabilities, classes, chosen["malignant_probability"])


def auc_change(base, folders, external, resamples=2000, seed=0):
    """(change, low, high): the external set's melanoma-vs-nevus AUC of `folders` minus that of
    `base`, with a 95% interval from resampling the set's melanomas and nevi together for both
    runs (a paired bootstrap: both scored the same images, so what varies is the images drawn)."""
    from training.metrics import melanoma_vs_nevus_auc
    relative = f"external/{external}/probabilities.csv"
    read_average(_as_list(base) + _as_list(folders), relative)  # refuses runs of different images
    labels, base_probabilities, classes, _ = read_average(base, relative)
    probabilities = read_average(folders, relative)[1]
    melanomas, nevi = (np.flatnonzero(labels == classes.index(code)) for code in ("mel", "nv"))

    def change(images):
        return (melanoma_vs_nevus_auc(labels[images], probabilities[images], classes)
                - melanoma_vs_nevus_auc(labels[images], base_probabilities[images], classes))

    rng = np.random.default_rng(seed)
    draws = [change(np.concatenate([rng.choice(melanomas, len(melanomas)), rng.choice(nevi, len(nevi))]))
             for _ in range(resamples)]
    low, high = np.percentile(draws, [2.5, 97.5])
    return change(np.concatenate([melanomas, nevi])), float(low), float(high)


def run_row(folders, against=None):
    """The figures of one evaluated run, or of the average of several runs' probabilities
    (a '+'-joined name), as a dict of column -> text; all from the per-image files.
    `against`: another run (folders), to add each external AUC's change from it."""
    from skinlesion.cards import read_card
    from training.metrics import calibration, classification_metrics, melanoma_vs_nevus_auc
    folders = [Path(folder) for folder in _as_list(folders)]
    cards = [read_card(json.loads((folder / "metrics.json").read_text())["model"]) for folder in folders]
    if len(folders) == 1:
        what, minutes = cards[0].get("note") or "", cards[0].get("training_minutes_all_epochs")
    else:  # each member's minutes are its last stage's: a sum would mean nothing
        what = (f"the average of the probabilities of {' and '.join(f.name for f in folders)} "
                f"({len(folders)} classifier passes per image)")
        minutes = "—"
    labels, probabilities, classes, sources = read_average(folders)
    by_source = {source: classification_metrics(labels[sources == source], probabilities[sources == source],
                                                classes) for source in dict.fromkeys(sources)}
    ham = by_source.get("ham10000") or classification_metrics(labels, probabilities, classes)
    row = {"run": "+".join(folder.name for folder in folders), "what": what, "minutes": minutes,
           "HAM bal. acc.": _figure(ham["balanced_accuracy"]),
           "HAM macro AUC": _figure(ham["macro_auc_ovr"]),
           "HAM mel recall": _figure(ham["recall"].get("mel"))}
    for name, source in by_source.items():
        if name != "ham10000":
            row[f"{name} val bal. acc."] = _figure(source["balanced_accuracy"])
    for external in sorted(path.name for path in (folders[0] / "external").glob("*")):
        labels, probabilities, classes, _ = read_average(folders, f"external/{external}/probabilities.csv")
        referral = referral_on_external(folders, external, "pooled")
        row["threshold"] = _figure(referral["malignant_probability"])
        row[f"{external} mel-vs-nv AUC"] = _figure(melanoma_vs_nevus_auc(labels, probabilities, classes))
        if against:
            change, low, high = auc_change(against, folders, external)
            row[f"{external} AUC change (95% interval)"] = f"{change:+.3f} [{low:+.3f}, {high:+.3f}]"
        row[f"{external} bal. acc."] = _figure(
            classification_metrics(labels, probabilities, classes)["balanced_accuracy"])
        row[f"{external} mel flagged"] = _percent(referral.get("melanoma_sensitivity"))
        row[f"{external} nevi flagged"] = _percent(referral.get("nevi_flagged_share"))
        strict = referral_on_external(folders, external, "every_source")
        row[f"{external} mel / nevi flagged, every-source rule"] = (
            f"{_percent(strict.get('melanoma_sensitivity'))} / {_percent(strict.get('nevi_flagged_share'))}")
        row[f"{external} ECE"] = _figure(calibration(labels, probabilities)["expected_calibration_error"])
    return row


def markdown_table(rows):
    columns = list(dict.fromkeys(column for row in rows for column in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(column, "")) for column in columns) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+",
                   help="output folders of training.evaluate; join several with '+' to add a row "
                        "for the average of their probabilities (runs/eval/r0+runs/eval/z1)")
    p.add_argument("--against", help="a run (or '+'-joined runs) to give each external AUC's change "
                                     "from, with a paired-bootstrap 95%% interval")
    p.add_argument("--markdown", help="also write the table to this file")
    args = p.parse_args(argv)
    against = args.against.split("+") if args.against else None
    table = markdown_table([run_row(folder.split("+"), against) for folder in args.folders])
    if args.markdown:
        Path(args.markdown).write_text(table)
    print(table)
    return table


if __name__ == "__main__":
    main()
