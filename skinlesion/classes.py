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


def task_classes(task):
    if task not in TASKS:
        raise ValueError(f"Unknown task {task!r}; choose from {sorted(TASKS)}.")
    return TASKS[task]
