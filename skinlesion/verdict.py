"""The one verdict an analysis shows, wherever it is shown (result page, history, compare,
batch, API): written once, here, so that no part of a page can contradict another.

Most serious first:
1. No reliable reading (the reliability state is "unusual" or "no_lesion"): the headline
   says so. No class and no state word is shown as a reading; the referral flag, if up,
   still asks for the lesion to be examined.
2. The referral flag is up: the headline is the flag with the most probable malignant class
   ("Suspicious: Melanoma 32%"), since that, not the most probable class, is what sends a
   lesion to a dermatologist. "Confident" only when that malignant class is also the most
   probable one and nothing else is uncertain; a more probable benign class makes it
   "Uncertain".
3. The flag is down: the most probable class. "Confident" only when nothing is uncertain
   and the two leading classes are at least CLOSE_MARGIN apart.
An analysis stored before reliability states existed has no state word ("not assessed").
"""
from dataclasses import asdict, dataclass, field

from .classes import DISPLAY_NAMES

CLOSE_MARGIN = 0.10  # two leading classes closer than this: undecided between them
NO_READING_STATES = ("unusual", "no_lesion")


@dataclass(frozen=True)
class Verdict:
    kind: str  # "no_reading" | "suspicious" | "reading"
    headline: str
    code: str  # the class the headline names (for reference only when kind is no_reading)
    probability: float
    state: str | None  # confident | uncertain | unusual | no_lesion; None: not assessed
    reasons: list = field(default_factory=list)  # why the state is what it is, in words

    @property
    def is_reading(self):
        """A diagnosis the page stands behind (history links it by its class name)."""
        return self.kind != "no_reading"

    def as_dict(self):
        return asdict(self)


def verdict_of(summary, suspicious=None):
    """The Verdict of a stored analysis summary (skinlesion.analysis.Analysis.summary()).
    `suspicious`: the stored flag, when kept apart from the summary."""
    ranked = summary["ranked"]
    suspicious = bool(summary.get("suspicious") if suspicious is None else suspicious)
    reliability = summary.get("reliability") or None
    stored = reliability["state"] if reliability else None
    reasons = list(reliability.get("reasons") or []) if reliability else []
    top = ranked[0]
    if stored in NO_READING_STATES:
        label = "Unusual image" if stored == "unusual" else "No lesion found"
        return Verdict("no_reading", f"{label}: no reliable reading", top["code"], top["probability"],
                       stored, reasons or [reliability.get("message", "")])
    if suspicious:
        shown = next((row for row in ranked if row.get("malignant")), top)
        state = stored
        if stored == "confident" and shown["code"] != top["code"]:
            state = "uncertain"
            reasons = [f"{DISPLAY_NAMES.get(top['code'], top['code'])} is more probable, yet the "
                       "malignant classes together reach the referral threshold"]
        return Verdict("suspicious", f"Suspicious: {_named(shown)}", shown["code"], shown["probability"],
                       state, reasons)
    state = stored
    if stored == "confident" and len(ranked) > 1 and top["probability"] - ranked[1]["probability"] < CLOSE_MARGIN:
        state = "uncertain"
        reasons = ["the two most likely diagnoses are close"]
    return Verdict("reading", _named(top), top["code"], top["probability"], state, reasons)


def _named(row):
    return f"{DISPLAY_NAMES.get(row['code'], row['code'])} {row['probability'] * 100:.0f}%"
