"""The result page as a PDF, rendered by WeasyPrint with the page's own print stylesheet.

WeasyPrint lays out HTML and CSS for paged media, so the PDF is the printed page itself
rather than a second layout to keep in step. Its resources are read from disk (the static
folder, and the images of the one analysis being rendered), never fetched over HTTP: no
credentials are needed, and nothing else can be reached.
"""
import mimetypes
from pathlib import Path
from urllib.parse import urlsplit

STATIC = Path(__file__).resolve().parents[1] / "static"


class ReportUnavailable(RuntimeError):
    """The PDF cannot be made on this server; str(error) says why and what to do."""


def html_to_pdf(render, image_path):
    """render(small_images) -> the page's HTML; image_path(analysis_id, kind) -> the file of that
    image of the analysis being rendered (None for any other analysis).

    The report is one A4 page: when the page with large images runs onto a second sheet, it is
    laid out again with small ones (the text is what cannot shrink)."""
    try:
        import weasyprint
        from PIL import ImageFile
        ImageFile.LOAD_TRUNCATED_IMAGES = False  # WeasyPrint turns this on for the whole process
    except (ImportError, OSError) as error:  # OSError: the Pango library is missing
        raise ReportUnavailable(
            "PDF export needs WeasyPrint and the Pango library (pip install weasyprint; "
            "apt-get install libpango-1.0-0 libpangoft2-1.0-0). Use Print report and "
            f"'Save as PDF' instead. ({type(error).__name__}: {error})") from None

    class LocalFiles(weasyprint.urls.URLFetcher):
        def fetch(self, url, headers=None):
            return weasyprint.urls.URLFetcherResponse(url, body=_local_file(url, image_path).read_bytes(),
                                                      headers={"Content-Type": _mime(url)})

    def laid_out(small_images):
        return weasyprint.HTML(string=render(small_images), base_url="http://report.invalid/",
                               url_fetcher=LocalFiles()).render()

    document = laid_out(small_images=False)
    if len(document.pages) > 1:
        document = laid_out(small_images=True)
    return document.write_pdf()


def _local_file(url, image_path):
    """/static/<file> or /analyses/<id>/<kind> (of the analysis being rendered) -> its path."""
    parts = [p for p in urlsplit(url).path.split("/") if p]
    if len(parts) == 2 and parts[0] == "static" and (STATIC / parts[1]).is_file():
        return STATIC / parts[1]
    if len(parts) == 3 and parts[0] == "analyses":
        path = image_path(parts[1], parts[2])
        if path is not None and path.is_file():
            return path
    raise ValueError(f"not part of this report: {url}")


def _mime(url):
    return mimetypes.guess_type(urlsplit(url).path)[0] or "application/octet-stream"
