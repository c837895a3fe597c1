"""Evaluation figures, pure: arrays of labels and probabilities in, numbers out (no model,
no file, no TensorFlow). Used by evaluate, fit_reliability, compare_runs, calibrate and the
trainers alike; tests/test_metrics.py checks them on small hand-made cases."""
import numpy as np

# The referral threshold is set where it flags this share of validation melanomas.
REFERRAL_SENSITIVITY = 0.90


def segmentation_metrics(jaccards):
    jaccards = np.asarray(jaccards)
    dice = 2 * jaccards / (1 + jaccards)
    return {"images": int(len(jaccards)), "mean_jaccard": round(float(jaccards.mean()), 4),
            "median_jaccard": round(float(np.median(jaccards)), 4),
            "mean_dice": round(float(dice.mean()), 4),
            "share_under_0.65_jaccard": round(float((jaccards < 0.65).mean()), 4),
            "resolution": "each image's own size"}


def classification_metrics(labels, probabilities, classes):
    """Balanced accuracy, per-class recall and one-vs-rest AUC, confusion matrix."""
    import warnings
    from sklearn.metrics import balanced_accuracy_score, confusion_matrix, roc_auc_score
    labels = np.asarray(labels)
    predicted = probabilities.argmax(1)
    recall, auc = {}, {}
    for index, code in enumerate(classes):
        positives = labels == index
        if positives.any():
            recall[code] = round(float((predicted[positives] == index).mean()), 4)
        if positives.any() and (~positives).any():
            auc[code] = round(float(roc_auc_score(positives, probabilities[:, index])), 4)
    with warnings.catch_warnings():  # another clinic may lack classes the model predicts
        warnings.filterwarnings("ignore", "y_pred contains classes not in y_true")
        balanced_accuracy = balanced_accuracy_score(labels, predicted)  # over classes present
    metrics = {
        "images": int(len(labels)),
        "class_counts": {code: int((labels == i).sum()) for i, code in enumerate(classes)},
        "balanced_accuracy": round(float(balanced_accuracy), 4),
        "accuracy": round(float((predicted == labels).mean()), 4),
        "macro_auc_ovr": round(float(np.mean(list(auc.values()))), 4) if auc else None,
        "recall": recall,
        "auc": auc,
        "confusion_matrix": {"rows_true_cols_predicted": list(classes),
                             "counts": confusion_matrix(labels, predicted,
                                                        labels=range(len(classes))).tolist()},
    }
    if "mel" in classes:
        metrics["melanoma_recall"] = recall.get("mel")
    return metrics


def malignant_scores(probabilities, classes):
    from skinlesion.classes import MALIGNANT
    return probabilities[:, [i for i, c in enumerate(classes) if c in MALIGNANT]].sum(1)


THRESHOLD_DECIMALS = 4  # a referral threshold as the card keeps and serving applies it


def referral_figures(labels, probabilities, classes, threshold):
    """What the referral flag (P(malignant) >= threshold) does on labelled images."""
    from skinlesion.classes import MALIGNANT
    labels = np.asarray(labels)
    flagged = malignant_scores(probabilities, classes) >= threshold
    is_malignant = np.isin(labels, [classes.index(c) for c in classes if c in MALIGNANT])

    def share(selected):
        return round(float(flagged[selected].mean()), 4) if selected.any() else None
    figures = {"malignant_probability": round(float(threshold), THRESHOLD_DECIMALS),
               "malignant_sensitivity": share(is_malignant),
               "benign_flagged_share": share(~is_malignant)}
    for code, key in (("mel", "melanoma_sensitivity"), ("nv", "nevi_flagged_share")):
        if code in classes:
            figures[key] = share(labels == classes.index(code))
    return figures


def referral_threshold(labels, probabilities, classes, sensitivity):
    """Lowest-false-alarm threshold on P(malignant) that still flags `sensitivity` of melanomas."""
    melanoma = np.asarray(labels) == classes.index("mel")
    scores = np.sort(malignant_scores(probabilities, classes)[melanoma])
    if scores.size == 0:
        return None
    # Rounded down to the decimals the card keeps: rounding to nearest could lift the threshold
    # over the melanoma that sets it, and the served flag would miss it (it once flagged 46 of
    # ISIC 2017's 52 validation melanomas where the rule promised 47).
    scale = 10 ** THRESHOLD_DECIMALS
    threshold = float(np.floor(scores[int(np.floor((1 - sensitivity) * scores.size))] * scale) / scale)
    return {"chosen_for_melanoma_sensitivity": sensitivity,
            **referral_figures(labels, probabilities, classes, threshold)}


REFERRAL_RULES = {
    "pooled": "the threshold that flags the sensitivity's share of the pooled validation melanomas",
    "every_source": "the lowest of each validation source's own thresholds for that sensitivity, "
                    "so that no source's melanomas are flagged less often",
}


def referral_by_rule(labels, probabilities, sources, classes, sensitivity, rule):
    """The referral threshold chosen on validation images from several sources by `rule`
    (REFERRAL_RULES), with what it does on the pooled images and on each source."""
    labels, sources = np.asarray(labels), np.asarray(sources)
    melanoma = classes.index("mel")
    if rule == "pooled":
        threshold = referral_threshold(labels, probabilities, classes, sensitivity)["malignant_probability"]
    elif rule == "every_source":
        threshold = min(referral_threshold(labels[sources == s], probabilities[sources == s], classes,
                                           sensitivity)["malignant_probability"]
                        for s in dict.fromkeys(sources) if (labels[sources == s] == melanoma).any())
    else:
        raise ValueError(f"Unknown referral rule {rule!r}; choose from {sorted(REFERRAL_RULES)}.")
    return {"chosen_for_melanoma_sensitivity": sensitivity, "rule": f"{rule}: {REFERRAL_RULES[rule]}",
            **referral_figures(labels, probabilities, classes, threshold),
            "by_source": {s: referral_figures(labels[sources == s], probabilities[sources == s], classes, threshold)
                          for s in dict.fromkeys(sources)}}


def melanoma_vs_nevus_auc(labels, probabilities, classes):
    """AUC of P(melanoma) for telling melanomas from nevi (the referral's hardest pair)."""
    from sklearn.metrics import roc_auc_score
    if not {"mel", "nv"} <= set(classes):
        return None
    labels = np.asarray(labels)
    mel, nv = classes.index("mel"), classes.index("nv")
    pair = (labels == mel) | (labels == nv)
    if len(set(labels[pair])) < 2:
        return None
    return round(float(roc_auc_score(labels[pair] == mel, probabilities[pair, mel])), 4)


def calibration(labels, probabilities, bins=10):
    """Reliability of the top-class probability: per-bin confidence, accuracy, count; ECE."""
    confidence = probabilities.max(1)
    correct = probabilities.argmax(1) == np.asarray(labels)
    edges = np.linspace(0, 1, bins + 1)
    rows, ece = [], 0.0
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            rows.append({"from": round(low, 2), "to": round(high, 2), "count": int(inside.sum()),
                         "confidence": round(float(confidence[inside].mean()), 4),
                         "accuracy": round(float(correct[inside].mean()), 4)})
            ece += inside.mean() * abs(confidence[inside].mean() - correct[inside].mean())
    return {"expected_calibration_error": round(float(ece), 4), "bins": rows}
