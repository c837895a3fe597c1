"""The web app's files of an analysis: the upload as received and the images derived from it.
Their names, writing them all or none, finding and removing them, and the sweep of files an
interrupted analysis left behind. The core renders and encodes (skinlesion.overlays); this
module decides where the bytes go.
"""
import time
from pathlib import Path

from skinlesion.imageio import ImageError
from skinlesion.overlays import IMAGE_KINDS, EncodingError, encoded_images

ORPHAN_GRACE_SECONDS = 60 * 60  # an analysis takes seconds; a worker times out after minutes
UPLOAD_KIND = "upload"


class ResultImageError(ImageError):
    """The overlays of an analysis could not be encoded (never a storage problem)."""
    status = 422


def upload_name(stem):
    """The upload's own bytes, as received, for audit (never served raw)."""
    return f"{stem}.upload"


def image_name(stem, kind, image_format="jpg"):
    """The one naming of an analysis' image files: `{stem}_{kind}.{ext}`."""
    return f"{stem}_{kind}.{IMAGE_KINDS[kind].suffix or image_format}"


class AnalysisFiles:
    """Where an analysis' files live: the upload in one folder, its images in another."""

    def __init__(self, upload_dir, image_dir, image_format="jpg"):
        self.upload_dir, self.image_dir, self.image_format = Path(upload_dir), Path(image_dir), image_format

    def write(self, stem, upload, analysis):
        """The upload's bytes and every image of `analysis`; returns kind -> file name. Every
        image is encoded before anything is written, and a failure leaves no file behind.
        Raises ResultImageError (an image cannot be encoded) or OSError (the disk)."""
        try:
            images = {image_name(stem, kind, self.image_format): (kind, data)
                      for kind, data in encoded_images(analysis, self.image_format).items()}
        except EncodingError as error:
            raise ResultImageError("The result images could not be made for this image "
                                   f"({error}). Nothing was stored.") from None
        files = {}
        try:
            self.upload_dir.mkdir(parents=True, exist_ok=True)
            self.image_dir.mkdir(parents=True, exist_ok=True)
            (self.upload_dir / upload_name(stem)).write_bytes(upload)  # as received, for audit
            files[UPLOAD_KIND] = upload_name(stem)
            for name, (kind, data) in images.items():
                (self.image_dir / name).write_bytes(data)
                files[kind] = name
        except OSError:
            self.remove(files)
            raise
        return files

    def path(self, files, kind):
        """The file of `kind` among an analysis' `files` (kind -> name), or None."""
        name = files.get(kind)
        return self._folder(kind) / name if name else None

    def remove(self, files):
        for kind, name in files.items():
            (self._folder(kind) / name).unlink(missing_ok=True)

    def _folder(self, kind):
        return self.upload_dir if kind == UPLOAD_KIND else self.image_dir

    def sweep_orphans(self, known_names, grace_seconds=ORPHAN_GRACE_SECONDS):
        """Remove files no analysis names (`known_names`) that are older than the grace period,
        so that a file another worker is writing now is never taken; returns how many."""
        cutoff = time.time() - grace_seconds
        removed = 0
        for folder in dict.fromkeys((self.upload_dir, self.image_dir)):
            for path in folder.glob("*"):
                if (path.is_file() and not path.name.startswith(".") and path.name not in known_names
                        and path.stat().st_mtime < cutoff):
                    path.unlink(missing_ok=True)
                    removed += 1
        return removed
