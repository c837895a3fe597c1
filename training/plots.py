"""The evaluation plots: ROC, confusion matrix, reliability diagram, Jaccard histogram (PNG,
matplotlib without a display)."""
import numpy as np

def _figure():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_roc(labels, probabilities, classes, path):
    from sklearn.metrics import roc_auc_score, roc_curve
    plt = _figure()
    figure, axes = plt.subplots(figsize=(5.5, 5))
    labels = np.asarray(labels)
    for index, code in enumerate(classes):
        positives = labels == index
        if positives.any() and (~positives).any():
            fpr, tpr, _ = roc_curve(positives, probabilities[:, index])
            auc = roc_auc_score(positives, probabilities[:, index])
            axes.plot(fpr, tpr, label=f"{code} (AUC {auc:.3f})")
    axes.plot([0, 1], [0, 1], "k:", linewidth=0.8)
    axes.set(xlabel="false positive rate", ylabel="true positive rate (recall)",
             title="ROC, one class vs rest")
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_confusion(labels, probabilities, classes, path):
    from sklearn.metrics import confusion_matrix
    plt = _figure()
    counts = confusion_matrix(labels, probabilities.argmax(1), labels=range(len(classes)))
    shares = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    figure, axes = plt.subplots(figsize=(5.5, 5))
    axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for row in range(len(classes)):
        for col in range(len(classes)):
            axes.text(col, row, f"{counts[row, col]}\n{shares[row, col]:.0%}", ha="center",
                      va="center", fontsize=7, color="white" if shares[row, col] > 0.5 else "black")
    axes.set_xticks(range(len(classes)), classes)
    axes.set_yticks(range(len(classes)), classes)
    axes.set(xlabel="predicted", ylabel="true", title="Confusion matrix (row shares)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_reliability(reliability, path, label=""):
    plt = _figure()
    figure, axes = plt.subplots(figsize=(5, 5))
    bins = reliability["bins"]
    axes.bar([(b["from"] + b["to"]) / 2 for b in bins], [b["accuracy"] for b in bins],
             width=0.09, edgecolor="black", label="accuracy")
    axes.plot([0, 1], [0, 1], "k:", label="perfect calibration")
    axes.set(xlabel="top-class probability", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1),
             title=f"Reliability{', ' + label if label else ''}\n(ECE {reliability['expected_calibration_error']:.3f})")
    axes.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_jaccard_histogram(jaccards, path):
    plt = _figure()
    figure, axes = plt.subplots(figsize=(5.5, 4))
    axes.hist(jaccards, bins=np.linspace(0, 1, 21), edgecolor="black")
    axes.axvline(0.65, color="red", linestyle="--", label="0.65")
    axes.axvline(float(np.mean(jaccards)), color="black", label=f"mean {np.mean(jaccards):.3f}")
    axes.set(xlabel="Jaccard index per image", ylabel="images", title="U-Net segmentation")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
