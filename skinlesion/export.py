"""CSV files that a person opens in a spreadsheet.

A cell that starts with = + - @ (or a tab or carriage return) is run as a formula by
Excel, LibreOffice and Google Sheets; a case reference or file name chosen by someone
else must never be. Such text cells get a leading apostrophe (OWASP's rule); numbers,
negative ones included, are written as they are.
"""
import csv

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def safe_cell(value):
    """The value, or the text with an apostrophe in front when it would be a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _is_number(value):
        return "'" + value
    return value


class SpreadsheetWriter:
    """csv.writer whose rows are made safe to open in a spreadsheet."""

    def __init__(self, handle, **options):
        self._writer = csv.writer(handle, **options)

    def writerow(self, row):
        return self._writer.writerow([safe_cell(value) for value in row])

    def writerows(self, rows):
        for row in rows:
            self.writerow(row)


def summary_columns(codes):
    """The columns every table of analyses shares (the batch CSV, predict.py's
    predictions.csv), for the class codes `codes`; each table adds its own around them."""
    return (["prediction"] + [f"p_{code}" for code in codes]
            + ["malignant_probability", "suspicious", "lesion_found", "lesion_area_fraction",
               "reliability", "ood_score", "unusual_image", "uncertain"]
            + ["outline_reliable"] + list(SIZE_COLUMNS) + ["scale_source", "similar_cases"])


# The lesion's sizes in a table: pixels always, millimetres only where the image's scale is known.
SIZE_COLUMNS = {"max_diameter_px": "{:.1f}", "area_px": "{:d}", "max_diameter_mm": "{:.2f}", "area_mm2": "{:.2f}"}


def summary_values(summary, codes):
    """An analysis' summary (`Analysis.summary()`) as the values of `summary_columns`."""
    reliability = summary.get("reliability") or {}
    score = reliability.get("ood_score")
    probabilities = summary["probabilities"]
    return ([summary["prediction"]]
            + ["" if code not in probabilities else f"{probabilities[code]:.6f}" for code in codes]
            + [f"{summary['malignant_probability']:.6f}", int(summary["suspicious"]),
               int(summary["lesion"]["found"]), f"{summary['lesion'].get('area_fraction', 0.0):.6f}",
               reliability.get("state", ""), "" if score is None else f"{score:.4f}",
               int(bool(reliability.get("unusual_image"))), int(bool(reliability.get("uncertain")))]
            + _lesion_values(summary["lesion"])
            + [";".join(f"{case['image_id']}:{case['dx']}" for case in summary.get("similar") or [])])


def _lesion_values(lesion):
    """outline_reliable, the sizes and where their scale came from ('' for what is not known)."""
    measured = lesion.get("measurements") or {}
    reliable = "" if not lesion.get("found") else int(not lesion.get("outline_problems"))
    sizes = ["" if measured.get(name) is None else form.format(measured[name]) for name, form in SIZE_COLUMNS.items()]
    return [reliable] + sizes + [(measured.get("scale") or {}).get("source", "")]
