"""How long finding the similar cases takes: Gallery.nearest over random queries, per shipped gallery.

    python benchmarks/similar_speed.py [--queries 300]

Issue 32's budget is 10 ms added to an analysis; the search is brute force in numpy.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None):
    from skinlesion.similar import Gallery
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    for path in sorted((ROOT / "models").glob("gallery_*.npz")):
        task = path.stem.removeprefix("gallery_")
        card = json.loads((ROOT / "models" / f"classifier_{task}.json").read_text())
        gallery = Gallery.load(path, card["sha256"])
        queries = rng.random((args.queries, gallery.features.shape[1]), dtype=np.float32)
        started = time.perf_counter()
        for query in queries:
            gallery.nearest(query)
        each = (time.perf_counter() - started) / args.queries * 1000
        print(f"{task}: {len(gallery.cases)} cases x {gallery.features.shape[1]} features, "
              f"{each:.2f} ms a query (mean over {args.queries} random queries)")


if __name__ == "__main__":
    main()
