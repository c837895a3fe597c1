"""How the model's readings agree with a clinic's confirmed diagnoses, with 95% intervals.

Each visit of a lesion whose diagnosis was later confirmed counts once: did the most
probable class name the confirmed diagnosis (per class: the recall), and did the referral
flag go up for a malignant one (sensitivity) or stay down for a benign one. Intervals are
Wilson score intervals, which hold for the small counts a clinic has.
"""
import math

from .classes import MALIGNANT

Z95 = 1.959964


def wilson(successes, total, z=Z95):
    """(low, high) of the 95% Wilson score interval of successes/total; (None, None) for 0."""
    if total == 0:
        return None, None
    share = successes / total
    centre = (share + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(share * (1 - share) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


def _share(successes, total):
    low, high = wilson(successes, total)
    return {"count": successes, "of": total, "share": successes / total if total else None,
            "interval_95": [low, high]}


def agreement(pairs):
    """pairs: [(summary of an analysis, confirmed diagnosis code)] -> the report (a dict)."""
    per_class, agree = {}, 0
    malignant_flagged = malignant = benign_flagged = benign = 0
    for summary, confirmed in pairs:
        hit = summary["prediction"] == confirmed
        agree += hit
        counts = per_class.setdefault(confirmed, [0, 0])
        counts[0] += hit
        counts[1] += 1
        if confirmed in MALIGNANT:
            malignant += 1
            malignant_flagged += bool(summary["suspicious"])
        elif confirmed != "other":
            benign += 1
            benign_flagged += bool(summary["suspicious"])
    return {"visits": len(pairs), "top_class_agrees": _share(agree, len(pairs)),
            "recall_per_confirmed_class": {code: _share(*counts) for code, counts in sorted(per_class.items())},
            "malignant_flagged": _share(malignant_flagged, malignant),
            "benign_flagged": _share(benign_flagged, benign)}


def as_text(report):
    def line(name, share):
        if not share["of"]:
            return f"{name}: none confirmed"
        low, high = share["interval_95"]
        return f"{name}: {share['count']}/{share['of']} = {share['share']:.0%} (95% CI {low:.0%}-{high:.0%})"
    rows = [f"{report['visits']} visits of lesions with a confirmed diagnosis",
            line("most probable class = confirmed diagnosis", report["top_class_agrees"]),
            line("malignant lesions flagged for referral", report["malignant_flagged"]),
            line("benign lesions flagged for referral", report["benign_flagged"])]
    rows += [line(f"  recall, confirmed {code}", share) for code, share in report["recall_per_confirmed_class"].items()]
    return "\n".join(rows)
