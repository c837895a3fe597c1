"""HAM10000 class codes, their plain-language names, and the two task definitions."""

DISPLAY_NAMES = {
    "akiec": "Actinic keratosis / intraepithelial carcinoma",
    "bcc": "Basal cell carcinoma",
    "bkl": "Benign keratosis",
    "df": "Dermatofibroma",
    "mel": "Melanoma",
    "nv": "Melanocytic nevus",
    "vasc": "Vascular lesion",
}

MALIGNANT = frozenset({"akiec", "bcc", "mel"})

TASKS = {
    "7class": ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"),
    "3class": ("bcc", "mel", "nv"),
}


# What each task is called where a person chooses it (the upload form, the pages).
TASK_LABELS = {"7class": "7 classes (all HAM10000 diagnoses)", "3class": "3 classes (bcc, mel, nv)"}


def in_class_order(codes):
    """Class codes in the one order every table uses (that of DISPLAY_NAMES)."""
    order = list(DISPLAY_NAMES)
    return sorted(codes, key=order.index)


def task_classes(task):
    if task not in TASKS:
        raise ValueError(f"Unknown task {task!r}; choose from {sorted(TASKS)}.")
    return TASKS[task]
