"""Compare two predict.py outputs: the same images, probabilities equal within a tolerance.

    python benchmarks/compare_predictions.py BEFORE/predictions.csv AFTER/predictions.csv [--tolerance 1e-4]

Exit 0 when every probability agrees within the tolerance, 1 otherwise. Used to show
that a speed-up did not move the shipped models' outputs.
"""
import argparse
import csv
import sys


def read(path):
    with open(path, newline="") as handle:
        return {row["image"]: row for row in csv.DictReader(handle)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args(argv)
    before, after = read(args.before), read(args.after)
    if before.keys() != after.keys():
        print(f"different images: {sorted(before.keys() ^ after.keys())[:10]}")
        return 1
    columns = [c for c in next(iter(before.values())) if c.startswith("p_")]
    worst, changed = 0.0, 0
    for name in before:
        delta = max(abs(float(before[name][c]) - float(after[name][c])) for c in columns)
        worst = max(worst, delta)
        changed += before[name]["prediction"] != after[name]["prediction"]
    print(f"{len(before)} images, largest probability difference {worst:.2e}, predictions changed: {changed}")
    return 0 if worst <= args.tolerance and not changed else 1


if __name__ == "__main__":
    sys.exit(main())
