"""One table of training runs, each on its own validation data and on other clinics.

    python -m training.compare_runs runs/eval/r0 runs/eval/r1 ... [--markdown table.md]

Each argument is an output folder of `training.evaluate --split val --external ...`
(its metrics.json); the run's card gives what was trained. Figures: balanced accuracy
and macro AUC on HAM10000 validation lesions (serving pipeline), balanced accuracy on the
other validation sources, and per external set the melanoma-vs-nevus AUC, balanced
accuracy over its classes, ECE, and melanoma sensitivity / nevi flagged at the run's own
referral threshold (chosen on its pooled validation images for 90% melanoma sensitivity:
the same rule for every run, from the per-image probabilities evaluate wrote), and at the
every-source rule (the lowest of the sources' own 90% thresholds).
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


def read_probabilities(path):
    """(labels, probabilities, classes) from an evaluate probabilities.csv."""
    import csv
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    classes = tuple(column[2:] for column in rows[0] if column.startswith("p_"))
    labels = np.array([classes.index(row["label"]) for row in rows])
    return labels, np.array([[float(row[f"p_{c}"]) for c in classes] for row in rows]), classes


def read_sources(path):
    import csv
    with open(path, newline="") as handle:
        return np.array([row["source"] for row in csv.DictReader(handle)])


def referral_on_external(folder, external_name, rule):
    """Every run's flag chosen alike (`rule`, evaluate.REFERRAL_RULES, for 90% melanoma
    sensitivity on its own validation images, serving pipeline), applied to the external set."""
    from training.evaluate import REFERRAL_SENSITIVITY, referral_by_rule, referral_figures
    labels, probabilities, classes = read_probabilities(folder / "probabilities.csv")
    sources = read_sources(folder / "probabilities.csv")
    chosen = referral_by_rule(labels, probabilities, sources, classes, REFERRAL_SENSITIVITY, rule)
    labels, probabilities, classes = read_probabilities(folder / "external" / external_name
                                                        / "probabilities.csv")
    return referral_figures(labels, probabilities, classes, chosen["malignant_probability"])


def run_row(folder):
    """The figures of one evaluated run, as a dict of column -> text."""
    from skinlesion.cards import read_card
    folder = Path(folder)
    metrics = json.loads((folder / "metrics.json").read_text())
    card = read_card(metrics["model"])
    sources = metrics.get("by_source") or {}
    ham = sources.get("ham10000", metrics)
    row = {"run": folder.name, "what": card.get("note") or "",
           "minutes": card.get("training_minutes_all_epochs"),
           "HAM bal. acc.": _figure(ham["balanced_accuracy"]),
           "HAM macro AUC": _figure(ham["macro_auc_ovr"]),
           "HAM mel recall": _figure(ham["recall"].get("mel"))}
    for name, source in sources.items():
        if name != "ham10000":
            row[f"{name} val bal. acc."] = _figure(source["balanced_accuracy"])
    for name, external in (metrics.get("external_validation") or {}).items():
        referral = referral_on_external(folder, name, "pooled")
        row["threshold"] = _figure(referral["malignant_probability"])
        row[f"{name} mel-vs-nv AUC"] = _figure(external["melanoma_vs_nevus_auc"])
        row[f"{name} bal. acc."] = _figure(external["balanced_accuracy"])
        row[f"{name} mel flagged"] = _percent(referral.get("melanoma_sensitivity"))
        row[f"{name} nevi flagged"] = _percent(referral.get("nevi_flagged_share"))
        strict = referral_on_external(folder, name, "every_source")
        row[f"{name} mel / nevi flagged, every-source rule"] = (
            f"{_percent(strict.get('melanoma_sensitivity'))} / {_percent(strict.get('nevi_flagged_share'))}")
        row[f"{name} ECE"] = _figure(external["reliability"]["expected_calibration_error"])
    return row


def markdown_table(rows):
    columns = list(dict.fromkeys(column for row in rows for column in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(column, "")) for column in columns) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+", help="output folders of training.evaluate")
    p.add_argument("--markdown", help="also write the table to this file")
    args = p.parse_args(argv)
    table = markdown_table([run_row(folder) for folder in args.folders])
    if args.markdown:
        Path(args.markdown).write_text(table)
    print(table)
    return table


if __name__ == "__main__":
    main()
