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
