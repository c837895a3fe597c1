"""Readers for the dataset layouts a user can point training or evaluation at.

Each reader returns a list of Sample records; `read_dataset(root)` recognises the
layout, or says which layouts it expected. Supported:
- HAM10000: HAM10000_metadata*.csv plus the images anywhere below (part_1/part_2 ...);
  lesion masks `ISIC_x_segmentation.png` anywhere below, if present.
- ISIC 2019: a ground-truth CSV with one-hot columns MEL, NV, BCC, AK, BKL, DF, VASC,
  SCC, UNK (AK is mapped to akiec; classes the task lacks are skipped and counted).
- ISIC 2016-2018 segmentation: ISIC_x.jpg with ISIC_x_segmentation.png.
- PH2: IMDxxx/IMDxxx_Dermoscopic_Image/IMDxxx.bmp and IMDxxx_lesion/IMDxxx_lesion.bmp,
  diagnoses from PH2_dataset.txt (common/atypical nevus -> nv, melanoma -> mel).
- One folder per class: ROOT/<class code>/*.jpg (mel, nv, ...).
- A labels CSV (the general form): a CSV with an image id column (`image_id` or `image`)
  and a `dx` column of class codes (optional `lesion_id`), images anywhere below. Rows with
  an empty or unknown `dx` are skipped and counted. ISIC 2017 as shipped in ../shared is this
  form with a column `isic2017_split`; its images were squashed to 256x256 from about 4:3
  landscape, so its samples carry `resize_to` (192, 256) to undo the squash.
"""
import csv
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

from skinlesion.imageio import IMAGE_SUFFIXES

MASK_SUFFIX = "_segmentation"

ISIC2019_COLUMNS = {"MEL": "mel", "NV": "nv", "BCC": "bcc", "AK": "akiec", "BKL": "bkl",
                    "DF": "df", "VASC": "vasc", "SCC": None, "UNK": None}

LAYOUT_HELP = (
    "Expected one of: HAM10000 (HAM10000_metadata.csv + images below it), ISIC 2019 "
    "(a ground-truth CSV with columns image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK + images), "
    "ISIC 2016-2018 segmentation (ISIC_x.jpg + ISIC_x_segmentation.png), PH2 "
    "(IMDxxx/IMDxxx_Dermoscopic_Image/IMDxxx.bmp), one folder per class code "
    "(ROOT/mel/*.jpg, ROOT/nv/*.jpg, ...), or a labels CSV with columns image_id,dx "
    "(class codes) + images below it.")

# Where a data set's images were stored with another aspect ratio than they were taken at.
ISIC2017_SIZE = (192, 256)  # (height, width): the 4:3 landscape the 256x256 files came from


# What a model trained on a source must cite (keyed by the source's folder name).
CITATIONS = {
    "ham10000": "HAM10000 (Tschandl, Rosendahl & Kittler, Sci. Data 5, 180161, 2018), CC BY-NC 4.0",
    "isic2017": "ISIC 2017 challenge (Codella et al., ISBI 2018, arXiv:1710.05006), ISIC Archive",
    "derm7pt": "Seven-point checklist dataset (Kawahara et al., IEEE JBHI 23(2), 2019), research use",
    "isic_acral": "ISIC Archive acral lesions (Hospital Clinic de Barcelona, Imperial College London, "
                  "Memorial Sloan Kettering and others; CC-0 / CC BY / CC BY-NC per image)",
}


def citation(source):
    return CITATIONS.get(source, f"{source} (no citation recorded)")


class DatasetError(ValueError):
    """A data folder whose layout is not recognised or is inconsistent."""


@dataclass(frozen=True)
class Sample:
    image: Path
    label: str | None  # a class code, or None when only a mask is known
    group: str  # lesion id where known, else the image id: the unit of the split
    mask: Path | None = None
    source: str = ""  # the data set it came from: its folder's name (read_dataset sets it)
    resize_to: tuple | None = None  # (height, width) to restore on loading, or None


def _index_files(root, predicate):
    return {path.stem: path for path in sorted(Path(root).rglob("*"))
            if path.is_file() and predicate(path)}


def _images_by_stem(root):
    return _index_files(root, lambda p: p.suffix.lower() in IMAGE_SUFFIXES
                        and not p.stem.endswith(MASK_SUFFIX))


def _masks_by_image_stem(root):
    masks = _index_files(root, lambda p: p.stem.endswith(MASK_SUFFIX)
                         and p.suffix.lower() in IMAGE_SUFFIXES)
    return {stem[: -len(MASK_SUFFIX)]: path for stem, path in masks.items()}


def _keep_classes(samples, classes, skipped_counter):
    kept = []
    for sample in samples:
        if classes is None or sample.label in classes:
            kept.append(sample)
        else:
            skipped_counter[sample.label] += 1
    return kept


def read_ham10000(root, classes=None, report=print):
    root = Path(root)
    csvs = sorted(root.rglob("HAM10000_metadata*.csv"))
    if not csvs:
        raise DatasetError(f"No HAM10000_metadata.csv below {root}. {LAYOUT_HELP}")
    images, masks = _images_by_stem(root), _masks_by_image_stem(root)
    samples, missing = [], 0
    with open(csvs[0], newline="") as handle:
        for row in csv.DictReader(handle):
            path = images.get(row["image_id"])
            if path is None:
                missing += 1
                continue
            samples.append(Sample(path, row["dx"], row["lesion_id"], masks.get(row["image_id"])))
    if not samples:
        raise DatasetError(f"{csvs[0]} lists no image found below {root}. {LAYOUT_HELP}")
    if missing:
        report(f"HAM10000: {missing} rows of the metadata have no image file; skipped.")
    skipped = Counter()
    samples = _keep_classes(samples, classes, skipped)
    if skipped:
        report(f"HAM10000: skipped images of classes outside the task: {dict(skipped)}")
    return samples


def _csv_with_header(root, accepts):
    """The first CSV below `root` whose set of column names `accepts`, or None."""
    for path in sorted(Path(root).rglob("*.csv")):
        with open(path, newline="") as handle:
            header = set(next(csv.reader(handle), []))
        if accepts(header):
            return path
    return None


def _report_rows(name, csv_path, samples, skipped_why, skipped, missing, report):
    """Say what a labels CSV's reader left out; refuse a CSV that gave nothing usable."""
    if skipped:
        report(f"{name}: skipped rows {skipped_why}: {dict(skipped)}")
    if missing:
        report(f"{name}: {missing} rows have no image file; skipped.")
    if not samples:
        raise DatasetError(f"{csv_path}: no usable rows with images. {LAYOUT_HELP}")


def _isic2019_csv(root):
    return _csv_with_header(root, lambda header: {"image", "MEL", "NV"} <= header)


def read_isic2019(root, classes=None, report=print):
    root = Path(root)
    truth = _isic2019_csv(root)
    if truth is None:
        raise DatasetError(f"No ISIC 2019 ground-truth CSV below {root}. {LAYOUT_HELP}")
    images = _images_by_stem(root)
    lesion_of = {}
    for path in sorted(root.rglob("*.csv")):  # optional metadata CSV with lesion ids
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames and {"image", "lesion_id"} <= set(reader.fieldnames):
                lesion_of.update({r["image"]: r["lesion_id"] for r in reader if r["lesion_id"]})
    samples, skipped, missing = [], Counter(), 0
    with open(truth, newline="") as handle:
        for row in csv.DictReader(handle):
            hot = [column for column in ISIC2019_COLUMNS if float(row.get(column) or 0) >= 0.5]
            code = ISIC2019_COLUMNS[hot[0]] if len(hot) == 1 else None
            if code is None or (classes is not None and code not in classes):
                skipped[hot[0] if hot else "none"] += 1
                continue
            path = images.get(row["image"])
            if path is None:
                missing += 1
                continue
            samples.append(Sample(path, code, lesion_of.get(row["image"], row["image"])))
    _report_rows("ISIC 2019", truth, samples, "of classes the task lacks", skipped, missing, report)
    return samples


def read_isic_segmentation(root, classes=None, report=print):
    images, masks = _images_by_stem(root), _masks_by_image_stem(root)
    pairs = [Sample(images[stem], None, stem, masks[stem]) for stem in sorted(images)
             if stem in masks]
    if not pairs:
        raise DatasetError(f"No ISIC_x.jpg + ISIC_x_segmentation.png pairs below {root}. "
                           f"{LAYOUT_HELP}")
    unpaired = len(images) - len(pairs)
    if unpaired:
        report(f"ISIC segmentation: {unpaired} images have no mask; skipped.")
    return pairs


PH2_DIAGNOSIS = {"0": "nv", "1": "nv", "2": "mel"}  # common nevus, atypical nevus, melanoma


def _ph2_labels(root):
    labels = {}
    for path in Path(root).rglob("PH2_dataset.txt"):
        for line in path.read_text(errors="replace").splitlines():
            fields = [field.strip() for field in line.split("||")]
            names = [field for field in fields if re.fullmatch(r"IMD\d+", field)]
            if not names:
                continue
            after = fields[fields.index(names[0]) + 1:]
            codes = [field for field in after if field in PH2_DIAGNOSIS]
            if codes:
                labels[names[0]] = PH2_DIAGNOSIS[codes[0]]
    return labels


def read_ph2(root, classes=None, report=print):
    root = Path(root)
    images = {p.stem: p for p in root.rglob("IMD*.bmp") if "_Dermoscopic_Image" in p.parent.name}
    if not images:
        raise DatasetError(f"No PH2 images (IMDxxx_Dermoscopic_Image/IMDxxx.bmp) below {root}. "
                           f"{LAYOUT_HELP}")
    masks = {p.stem[: -len("_lesion")]: p for p in root.rglob("IMD*_lesion.bmp")}
    labels = _ph2_labels(root)
    samples = [Sample(path, labels.get(stem), stem, masks.get(stem))
               for stem, path in sorted(images.items())]
    skipped = Counter()
    if classes is not None:
        samples = _keep_classes(samples, set(classes) | {None}, skipped)
    return samples


def read_class_folders(root, classes=None, report=print):
    from skinlesion.classes import DISPLAY_NAMES
    root = Path(root)
    folders = [p for p in sorted(root.iterdir()) if p.is_dir()]
    unknown = [p.name for p in folders if p.name.lower() not in DISPLAY_NAMES]
    if not folders or unknown:
        raise DatasetError(f"{root}: folders {unknown or '(none)'} are not class codes "
                           f"{sorted(DISPLAY_NAMES)}. {LAYOUT_HELP}")
    samples, skipped = [], Counter()
    for folder in folders:
        for stem, path in _images_by_stem(folder).items():
            samples.append(Sample(path, folder.name.lower(), stem))
    samples = _keep_classes(samples, classes, skipped)
    if skipped:
        report(f"Class folders: skipped images of classes outside the task: {dict(skipped)}")
    if not samples:
        raise DatasetError(f"{root}: no images in the class folders. {LAYOUT_HELP}")
    return samples


IMAGE_ID_COLUMNS = ("image_id", "image")


def _labels_csv(root):
    """The first CSV below `root` with an image id column and a `dx` column, or None."""
    return _csv_with_header(root, lambda header: "dx" in header and bool(header & set(IMAGE_ID_COLUMNS)))


def _linked_groups(rows, id_column):
    """{image id: group}: images that share a lesion_id or a patient_id, directly or through
    another image, form one group, so a split keeps a lesion and a patient on one side. An image
    with neither is its own group."""
    parent = {}

    def root(key):
        while parent.setdefault(key, key) != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for row in rows:
        keys = [f"image:{row[id_column]}"] + [f"{column}:{row[column]}" for column in ("lesion_id", "patient_id")
                                              if row.get(column)]
        for key in keys[1:]:
            parent[root(key)] = root(keys[0])
    return {row[id_column]: root(f"image:{row[id_column]}") for row in rows}


def read_labels_csv(root, classes=None, report=print):
    """The general form: labels CSV (image_id|image, dx[, lesion_id][, patient_id]) + images
    below. Images sharing a lesion or a patient are one group of the split."""
    from skinlesion.classes import DISPLAY_NAMES
    root = Path(root)
    labels = _labels_csv(root)
    if labels is None:
        raise DatasetError(f"No labels CSV with columns image_id,dx below {root}. {LAYOUT_HELP}")
    images, masks = _images_by_stem(root), _masks_by_image_stem(root)
    samples, skipped, missing = [], Counter(), 0
    with open(labels, newline="") as handle:
        reader = csv.DictReader(handle)
        id_column = next(c for c in IMAGE_ID_COLUMNS if c in reader.fieldnames)
        squashed = "isic2017_split" in reader.fieldnames
        rows = list(reader)
        linked = "patient_id" in reader.fieldnames
        groups = _linked_groups(rows, id_column) if linked else {}
        for row in rows:
            code = (row["dx"] or "").strip().lower()
            if code not in DISPLAY_NAMES:
                skipped[code or "(none)"] += 1
                continue
            path = images.get(row[id_column])
            if path is None:
                missing += 1
                continue
            group = groups[row[id_column]] if linked else (row.get("lesion_id") or row[id_column])
            samples.append(Sample(path, code, group,
                                  masks.get(row[id_column]), resize_to=ISIC2017_SIZE if squashed else None))
    _report_rows(labels.name, labels, samples, "whose dx is not a class code", skipped, missing, report)
    return _keep_classes(samples, classes, Counter())


def detect_layout(root):
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"Data folder not found: {root}")
    if any(root.rglob("HAM10000_metadata*.csv")):
        return "ham10000"
    if _isic2019_csv(root) is not None:
        return "isic2019"
    if any(root.rglob("IMD*_Dermoscopic_Image")):
        return "ph2"
    if any(root.rglob(f"*{MASK_SUFFIX}.png")):
        return "isic_segmentation"
    if _labels_csv(root) is not None:
        return "labels_csv"
    from skinlesion.classes import DISPLAY_NAMES
    if any(p.is_dir() and p.name.lower() in DISPLAY_NAMES for p in root.iterdir()):
        return "class_folders"
    raise DatasetError(f"{root}: layout not recognised. {LAYOUT_HELP}")


READERS = {"ham10000": read_ham10000, "isic2019": read_isic2019, "ph2": read_ph2,
           "isic_segmentation": read_isic_segmentation, "class_folders": read_class_folders,
           "labels_csv": read_labels_csv}


def read_dataset(root, classes=None, layout=None, report=print):
    """Samples of the dataset at `root` (layout auto-detected unless given), each
    tagged with its source: the folder's name."""
    layout = layout or detect_layout(root)
    source = Path(root).resolve().name
    return [replace(s, source=source) for s in READERS[layout](root, classes=classes, report=report)]


def split_by_group(samples, val_fraction=0.15, seed=42):
    """Lesion-disjoint, class-stratified split: every image of a group lands on one side.

    Groups are stratified by their (first) label, so each class keeps about
    `val_fraction` of its lesions in validation. Deterministic for a given seed.
    """
    by_group = defaultdict(list)
    for sample in samples:
        by_group[sample.group].append(sample)
    groups_by_label = defaultdict(list)
    for group in sorted(by_group):
        groups_by_label[by_group[group][0].label or ""].append(group)
    rng = random.Random(seed)
    val_groups = set()
    for label in sorted(groups_by_label):
        groups = groups_by_label[label]
        rng.shuffle(groups)
        count = int(round(len(groups) * val_fraction))
        if len(groups) > 1:
            count = max(count, 1)
        val_groups.update(groups[:count])
    train = [s for s in samples if s.group not in val_groups]
    val = [s for s in samples if s.group in val_groups]
    return train, val


def split_for_task(samples, classes, val_fraction=0.15, seed=42):
    """Split all labelled samples by lesion first, then keep the task's classes.

    Every task (and the segmenter) then shares one validation split: a 3-class model
    can start from a 7-class one without its validation lesions leaking into training.
    """
    train, val = split_by_group(samples, val_fraction, seed)
    keep = set(classes)
    return [s for s in train if s.label in keep], [s for s in val if s.label in keep]


def split_sources(folders, classes, val_fraction=0.15, seed=42, limit=0):
    """Several data folders, each split on its own by `split_for_task` (so HAM10000's
    validation lesions stay those of every earlier model); the pooled (train, val)."""
    train, val = [], []
    for folder in folders:
        samples = read_dataset(folder)
        if limit:
            samples = samples[:limit]
        source_train, source_val = split_for_task(samples, classes, val_fraction, seed)
        train += source_train
        val += source_val
    return train, val
