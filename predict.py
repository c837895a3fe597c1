"""Batch analysis from the command line.

    python predict.py PATH [PATH ...] --out DIR [--task 7class|3class]

PATH: image files or folders of images (searched recursively). Writes
DIR/predictions.csv (image, prediction, p_<code> per class, then extra columns, among
them ood_score, unusual_image, uncertain, the reliability state, and the lesion's sizes: in
pixels always, in mm where the image's scale is known, e.g. from --scales),
DIR/masks/<image>.png (the U-Net mask, 0/255, at the image's own size) and, for
files that could not be analysed (unreadable, or not dermoscopy), DIR/errors.csv with the
reason. --calibration site.json uses a clinic's own referral threshold. Exit status: 0 all analysed,
2 some skipped, 1 usage error.
"""
import argparse
import sys
import time
from pathlib import Path

from skinlesion.classes import TASKS
from skinlesion.imageio import IMAGE_SUFFIXES

EXIT_OK, EXIT_USAGE, EXIT_SKIPPED = 0, 1, 2


class UsageError(Exception):
    pass


def parse_args(argv, settings):
    """The command line; what it leaves out comes from `settings` (SKINLESION_* variables)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--task", default="7class", choices=sorted(TASKS))
    parser.add_argument("--models", default=settings.models_dir,
                        help="folder with the models and their cards (default: SKINLESION_MODELS_DIR, models/)")
    parser.add_argument("--calibration", default=settings.calibration,
                        help="a site calibration file (python -m training.calibrate) for --task")
    parser.add_argument("--scales", default=settings.scales,
                        help="a JSON file of dermatoscope fields of view, for sizes in mm (docs/deployment.md)")
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    return parser.parse_args(argv)


def collect_images(paths):
    """Files named directly are taken whatever their suffix (the loader judges them);
    folders are searched for image suffixes. Sorted, duplicates removed."""
    found = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            found.append(path)
        else:
            raise UsageError(f"No such file or folder: {text}")
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        raise UsageError("No images found in the given paths.")
    return unique


def output_names(images):
    """`image` column values: the file name without extension, made unique if two clash."""
    names, seen = [], {}
    for path in images:
        stem = path.stem
        count = seen.get(stem, 0)
        seen[stem] = count + 1
        names.append(stem if count == 0 else f"{stem}__{count}")
    return names


def mask_at_original_size(result):
    """The mask at the size of the image file (a large image is analysed smaller)."""
    from skinlesion.regions import resize_mask
    size = result.original_size
    if result.mask.shape == (size["height"], size["width"]):
        return result.mask
    return resize_mask(result.mask, size["height"], size["width"])


def progress(done, total, started, quiet):
    if quiet:
        return
    elapsed = time.time() - started
    rate = done / elapsed if elapsed > 0 else 0.0
    left = (total - done) / rate if rate > 0 else 0.0
    end = "\n" if done == total else ""
    print(f"\r{done}/{total} images, {rate:.1f}/s, about {left:.0f}s left ", end=end,
          file=sys.stderr, flush=True)


def run(args):
    images = collect_images(args.paths)
    out = Path(args.out)
    masks = out / "masks"
    masks.mkdir(parents=True, exist_ok=True)

    from skinlesion.analysis import Analyzer
    from skinlesion.export import SpreadsheetWriter, summary_columns, summary_values
    from skinlesion.imageio import ImageError
    from skinlesion.overlays import save_mask_png
    from skinlesion.scale import read_scales
    scales = read_scales(args.scales) if args.scales else None
    analyzer = Analyzer(args.models, tasks=(args.task,), calibration=args.calibration, scales=scales)
    classes = analyzer.classifier(args.task).classes
    columns = ["image"] + summary_columns(classes) + ["source"]
    errors = []
    started = time.time()
    with open(out / "predictions.csv", "w", newline="") as handle:
        writer = SpreadsheetWriter(handle)
        writer.writerow(columns)
        for done, (path, name) in enumerate(zip(images, output_names(images)), start=1):
            try:
                result = analyzer.analyze(path, args.task, explain=False)
            except ImageError as error:
                errors.append((name, str(path), str(error)))
                print(f"\nskipped {path}: {error}", file=sys.stderr)
            else:
                save_mask_png(mask_at_original_size(result), masks / f"{name}.png")
                writer.writerow([name] + summary_values(result.summary(), classes) + [str(path)])
            progress(done, len(images), started, args.quiet)
    error_file = out / "errors.csv"
    if errors:
        with open(error_file, "w", newline="") as handle:
            writer = SpreadsheetWriter(handle)
            writer.writerow(["image", "path", "error"])
            writer.writerows(errors)
    elif error_file.exists():
        error_file.unlink()  # a stale list from an earlier run would mislead
    print(f"{len(images) - len(errors)} analysed, {len(errors)} skipped -> {out}", file=sys.stderr)
    return EXIT_SKIPPED if errors else EXIT_OK


def main(argv=None):
    from skinlesion.cards import ModelFileError
    from skinlesion.classify import CalibrationError
    from skinlesion.runtime import configure_threads
    from skinlesion.scale import ScaleError
    from skinlesion.settings import Settings, SettingError
    try:
        settings = Settings.from_environment()
    except SettingError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        args = parse_args(argv, settings)
    except SystemExit as exit_:
        return EXIT_USAGE if exit_.code else EXIT_OK
    configure_threads(settings.inference_threads)
    try:
        return run(args)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (OSError, ModelFileError, CalibrationError, ScaleError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
