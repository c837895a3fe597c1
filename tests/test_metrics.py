"""training/metrics.py on small hand-made cases: the figures every card and report quotes."""
import numpy as np
import pytest

from training.metrics import (calibration, classification_metrics, melanoma_vs_nevus_auc, referral_by_rule,
                              referral_threshold, segmentation_metrics)

CLASSES = ["bcc", "mel", "nv"]


def one_hot_like(predicted, confidence=0.8, classes=3):
    probabilities = np.full((len(predicted), classes), (1 - confidence) / (classes - 1))
    probabilities[np.arange(len(predicted)), predicted] = confidence
    return probabilities


def test_balanced_accuracy_is_the_mean_of_the_recalls():
    labels = [0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2]
    predicted = [0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2]  # recalls 1/2, 3/4, 1
    metrics = classification_metrics(labels, one_hot_like(predicted), CLASSES)
    assert metrics["recall"] == {"bcc": 0.5, "mel": 0.75, "nv": 1.0}
    assert metrics["balanced_accuracy"] == pytest.approx((0.5 + 0.75 + 1.0) / 3, abs=1e-4)
    assert metrics["melanoma_recall"] == 0.75 and metrics["class_counts"] == {"bcc": 2, "mel": 4, "nv": 8}
    assert metrics["confusion_matrix"]["counts"] == [[1, 1, 0], [0, 3, 1], [0, 0, 8]]


def test_a_class_absent_from_the_labels_has_no_recall_and_no_auc():
    metrics = classification_metrics([1, 2, 2], one_hot_like([1, 2, 0]), CLASSES)
    assert "bcc" not in metrics["recall"] and "bcc" not in metrics["auc"]


def test_melanoma_vs_nevus_auc_ranks_only_that_pair():
    labels = np.array([1, 1, 2, 2, 0])
    probabilities = np.array([[0, .9, .1], [0, .6, .4], [0, .7, .3], [0, .1, .9], [.0, .99, .01]])
    # melanomas 0.9, 0.6 against nevi 0.7, 0.1: three of four pairs ordered; the bcc is ignored
    assert melanoma_vs_nevus_auc(labels, probabilities, CLASSES) == 0.75
    assert melanoma_vs_nevus_auc(labels, probabilities, ["bcc", "mel", "bkl"]) is None


def test_the_referral_threshold_is_rounded_down_so_it_still_flags_its_melanoma():
    labels = np.array([1] * 10 + [2] * 10)
    malignant = np.r_[np.linspace(0.30006, 0.9, 10), np.linspace(0.0, 0.5, 10)]  # to nearest: 0.3001
    probabilities = np.c_[np.zeros(20), malignant, 1 - malignant]
    chosen = referral_threshold(labels, probabilities, CLASSES, 1.0)
    assert chosen["malignant_probability"] == 0.3 and chosen["melanoma_sensitivity"] == 1.0
    assert chosen["nevi_flagged_share"] == 0.4  # nevi at 0.33, 0.39, 0.44, 0.5


def test_every_source_rule_takes_the_lowest_threshold_of_the_sources():
    labels = np.array([1, 1, 2, 1, 1, 2])
    malignant = np.array([0.8, 0.9, 0.1, 0.3, 0.4, 0.1])
    probabilities = np.c_[np.zeros(6), malignant, 1 - malignant]
    sources = ["a", "a", "a", "b", "b", "b"]
    chosen = referral_by_rule(labels, probabilities, sources, CLASSES, 1.0, "every_source")
    assert chosen["malignant_probability"] == 0.3
    assert chosen["by_source"]["a"]["melanoma_sensitivity"] == chosen["by_source"]["b"]["melanoma_sensitivity"] == 1.0
    with pytest.raises(ValueError, match="Unknown referral rule"):
        referral_by_rule(labels, probabilities, sources, CLASSES, 1.0, "median")


def test_a_calibrated_model_has_no_calibration_error_and_an_overconfident_one_has():
    labels = np.array([0] * 8 + [1] * 2)
    right_eight_in_ten = one_hot_like([0] * 10, confidence=0.8)
    assert calibration(labels, right_eight_in_ten)["expected_calibration_error"] == pytest.approx(0.0, abs=1e-6)
    overconfident = one_hot_like([0] * 10, confidence=0.99)
    assert calibration(labels, overconfident)["expected_calibration_error"] == pytest.approx(0.19, abs=1e-4)


def test_segmentation_figures_from_jaccards():
    figures = segmentation_metrics([1.0, 0.5, 0.6])
    assert figures["mean_jaccard"] == pytest.approx(0.7, abs=1e-4) and figures["median_jaccard"] == 0.6
    assert figures["mean_dice"] == pytest.approx(np.mean([1.0, 2 / 3, 0.75]), abs=1e-4)
    assert figures["share_under_0.65_jaccard"] == pytest.approx(2 / 3, abs=1e-4)
