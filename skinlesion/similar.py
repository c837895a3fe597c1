"""Similar confirmed cases: the gallery lesions nearest to an analysed lesion.

"Similar" means near in the classifier's own pooled features of the lesion crop (the vector
its last layer reads; Tschandl et al., Br J Dermatol 2019, found retrieval by these about as
accurate as the classification itself): the cosine similarity of the two vectors. A gallery
belongs to one classifier (its features mean nothing to another) and is refused when the
model's sha256 differs. Brute force over a few thousand vectors takes well under a
millisecond with numpy, so there is no index.
"""
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .cards import ModelFileError

NEIGHBOURS = 8
SAME_IMAGE = 0.9995  # a cosine this close is the query's own image (re-encoded): never shown


def gallery_file(task):
    """The reference gallery of a task's classifier, beside it in the models folder."""
    return f"gallery_{task}.npz"


class GalleryError(ModelFileError):
    """A gallery that does not belong to the model it is loaded with (refused like a stale card)."""


@dataclass
class Gallery:
    features: np.ndarray  # (N, D) float32, each row of length 1
    cases: list  # per row: {"image_id", "lesion_id", "dx", "source", "attribution", "licence"}
    card: dict

    @classmethod
    def load(cls, path, model_sha256):
        """The gallery at `path` (.npz with its .json card) for the model of that sha256."""
        path = Path(path)
        card = json.loads(path.with_suffix(".json").read_text())
        if card.get("model_sha256") != model_sha256:
            raise GalleryError(f"{path.name} was built for another model (sha256 {card.get('model_sha256', '?')[:12]}, "
                               f"not {model_sha256[:12]}): rebuild it with python -m training.build_gallery")
        stored = np.load(path, allow_pickle=False)
        cases = json.loads(str(stored["cases"]))
        return cls(normalised(stored["features"].astype(np.float32)), cases, card)

    def nearest(self, features, k=NEIGHBOURS, exclude_lesions=()):
        """The k most similar cases, nearest first: [{**case, "similarity"}]. Cases of the
        lesions `exclude_lesions` and the query's own image are left out."""
        if len(self.cases) == 0:
            return []
        similarity = self.features @ normalised(np.asarray(features, np.float32)[None])[0]
        # Only the best few need sorting: k, and room for the few a query excludes.
        best = min(len(similarity), k + 8 + len(exclude_lesions))
        candidates = np.argpartition(-similarity, best - 1)[:best]
        shown = []
        for index in candidates[np.argsort(-similarity[candidates])]:
            case = self.cases[int(index)]
            if similarity[index] >= SAME_IMAGE or case.get("lesion_id") in exclude_lesions:
                continue
            shown.append(dict(case, similarity=round(float(similarity[index]), 4)))
            if len(shown) == k:
                break
        return shown


def normalised(vectors):
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def majority(neighbours):
    """The diagnosis most of the neighbours have (ties: the nearer one's), or None."""
    counts = {}
    for rank, case in enumerate(neighbours):
        count, first = counts.get(case["dx"], (0, rank))
        counts[case["dx"]] = (count + 1, first)
    return min(counts, key=lambda dx: (-counts[dx][0], counts[dx][1])) if counts else None
