"""Fit what belongs to a classifier besides its weights, and write it into its card.

    python -m training.fit_reliability --model models/classifier_7class.h5 \
        --data ../shared/data/ham10000 ../shared/data/isic2017 \
        --external ../shared/data/derm7pt --plots docs/evaluation/classifier_7class

Rerun it whenever a classifier is retrained. In order, on images through the serving
pipeline (U-Net crop, test-time views):
1. temperature: scales the logits to minimise the negative log-likelihood of the pooled
   validation images (each data folder's own validation split, as in training);
2. referral threshold: on the calibrated validation probabilities, by --referral-rule: the
   lowest that flags --referral-sensitivity (90% by default) of the pooled melanomas (default),
   or of every validation source's;
3. feature statistics: a Gaussian of the pooled features of training crops (the
   unusual-image score) and of whole training images (part of the dermoscopy gate);
4. the dermoscopy gate: logistic regression on whole-image features, dermoscopy
   (training images) against generated non-dermoscopic images (training.not_dermoscopy);
5. thresholds: refusal where almost no validation image is refused; the three "unusual"
   marks (crop features far from training, whole image far, partly unlike dermoscopy) so
   that, with the lesions the U-Net does not find, at most UNUSUAL_BUDGET of any source's
   validation images lose their reading (a held-out estimate beside it: chosen on one half,
   counted on the other); and the "uncertain" rule (top-two margin, a grey zone under the
   referral threshold) chosen on validation: warn on as many of the missed validation
   melanomas as possible while warning on at most UNCERTAIN_BUDGET of HAM10000's images;
6. measures everything on the validation images, the --external folders (never fitted
   on) and a second, differently drawn non-dermoscopic set, leaving each kind out of the
   gate's training in turn; writes the .npz beside the model, the card's "reliability",
   "calibration", "referral" and "external_validation" sections, and reliability plots.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# --- settings (each one is also a flag) -----------------------------------------------
DATA = ["../shared/data/ham10000", "../shared/data/isic2017"]
TRAIN_SAMPLE = 3000  # training images for the feature statistics and the gate's positives
DENSITY_COMPONENTS = 64
NOT_DERMOSCOPY_PER_KIND = 40  # gate negatives per kind (seed 0); the test set uses seed 1
# "Unusual" replaces the reading with a warning, so it must be rare on real dermoscopy: at most
# this share of any source's validation images marked unusual or without a lesion (issue 27;
# the 95th/99th validation percentiles used before marked 5-25% of real clinics' images).
UNUSUAL_BUDGET = 0.02
GATE_MARK_FLOOR = 0.5  # a gate probability under this is never a mark, whatever the budget
REFUSE_MARGIN = 1.5  # refusal thresholds sit this far beyond the most extreme validation image
UNCERTAIN_BUDGET = 0.18  # at most this share of HAM10000 validation images carries a warning
# evaluate.REFERRAL_RULES. "every_source" flags --referral-sensitivity of every source's
# melanomas; at 90%, for a model trained on HAM10000 alone, that meant a threshold flagging half
# of HAM10000's nevi and 83% of ISIC 2017's. The shipped averages, whose members also trained on
# ISIC 2017, use it (their flags: docs/training.md; docs/evaluation/other_clinics.md).
REFERRAL_RULE = "pooled"
SEED = 0


def parse_args(argv=None):
    from training.metrics import REFERRAL_RULES, REFERRAL_SENSITIVITY
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="classifier .h5 with its card")
    p.add_argument("--data", nargs="+", default=DATA, help="the folders the model was trained on")
    p.add_argument("--external", nargs="*", default=[], help="other clinics: measured, never fitted on")
    p.add_argument("--models", default=str(ROOT / "models"), help="folder with unet.h5")
    p.add_argument("--plots", default=None, help="folder for the reliability plots")
    p.add_argument("--train-sample", type=int, default=TRAIN_SAMPLE)
    p.add_argument("--components", type=int, default=DENSITY_COMPONENTS)
    p.add_argument("--not-dermoscopy-per-kind", type=int, default=NOT_DERMOSCOPY_PER_KIND)
    p.add_argument("--uncertain-budget", type=float, default=UNCERTAIN_BUDGET)
    p.add_argument("--unusual-budget", type=float, default=UNUSUAL_BUDGET)
    p.add_argument("--referral-rule", default=REFERRAL_RULE, choices=sorted(REFERRAL_RULES),
                   help="how the referral threshold is chosen on the validation sources")
    p.add_argument("--referral-sensitivity", type=float, default=REFERRAL_SENSITIVITY,
                   help="share of validation melanomas the threshold flags (a margin above 0.90 "
                        "for members trained on the validation sources' other images)")
    p.add_argument("--seed", type=int, default=SEED)
    return p.parse_args(argv)


# --- fitting --------------------------------------------------------------------------

def fit_temperature(view_logits, labels):
    """The temperature minimising the validation negative log-likelihood (a fine grid:
    one parameter, no optimiser needed)."""
    from skinlesion.reliability import calibrated_probabilities
    grid = np.exp(np.linspace(np.log(0.25), np.log(6.0), 300))
    losses = [-np.log(np.maximum(calibrated_probabilities(view_logits, t)[np.arange(len(labels)), labels],
                                 1e-12)).mean() for t in grid]
    return float(grid[int(np.argmin(losses))])


def fit_gate(positives, negatives, seed):
    """Class-balanced logistic regression, dermoscopy (0) vs not (1), on standardised features."""
    from sklearn.linear_model import LogisticRegression
    from skinlesion.reliability import DermoscopyGate
    features = np.concatenate([positives, negatives])
    targets = np.r_[np.zeros(len(positives)), np.ones(len(negatives))]
    mean, scale = features.mean(0), features.std(0) + 1e-6
    regression = LogisticRegression(C=0.05, class_weight="balanced", max_iter=2000, random_state=seed)
    regression.fit((features - mean) / scale, targets)
    return DermoscopyGate(mean, scale, regression.coef_[0], regression.intercept_[0])


def mark_thresholds(scores, sources, no_lesion, budget):
    """{mark: threshold} for the unusual-image marks (`scores`: {mark: validation scores, higher
    is less like the training images}). What the worst source's lesions-not-found leave of the
    budget is shared equally by the marks; each threshold is the highest over the sources of
    that share's upper percentile, so no source has more than its share marked by any mark."""
    names = list(dict.fromkeys(sources))
    left = max(0.0, budget - max(no_lesion[sources == name].mean() for name in names))
    share = left / len(scores)
    return {mark: float(max(np.percentile(values[sources == name], 100 * (1 - share)) for name in names))
            for mark, values in scores.items()}


def marked_share(scores, thresholds, no_lesion):
    """Per image: marked unusual by any mark, or no lesion found."""
    marked = no_lesion.copy()
    for mark, values in scores.items():
        marked |= values > thresholds[mark]
    return marked


def held_out_unusual(scores, sources, groups, no_lesion, budget, seed):
    """Per source, the share marked unusual or without a lesion when the thresholds are chosen
    on half of the validation lesions and counted on the other half (both ways round): the
    in-sample share is at most the budget by construction and says nothing of new images."""
    halves = np.random.default_rng(seed).random(len(set(groups))) < 0.5
    half_of = dict(zip(sorted(set(groups)), halves))
    first = np.array([half_of[group] for group in groups])
    marked = np.zeros(len(sources), bool)
    for chosen in (first, ~first):
        thresholds = mark_thresholds({m: v[chosen] for m, v in scores.items()}, sources[chosen],
                                     no_lesion[chosen], budget)
        counted = ~chosen
        marked[counted] = marked_share({m: v[counted] for m, v in scores.items()}, thresholds,
                                       no_lesion[counted])
    return {name: rate(marked, sources == name) for name in dict.fromkeys(sources)}


def choose_uncertain_rule(probabilities, malignant, threshold, warned_unusual, labels, sources,
                          classes, budget, reference):
    """(margin, grey_zone): among the rules that warn on at most `budget` of the reference
    source's validation images (HAM10000: unusual or uncertain), the one that warns on most
    of the validation melanomas the referral flag misses, every source's (ties: fewer warnings).
    Every source's, not only the others': a model that misses few of the other sources'
    melanomas leaves too few to choose a rule by (the 7-class average missed 6 of ISIC 2017's
    52; the rule fitted on those six warned on 66% of derm7pt's missed melanomas)."""
    from skinlesion.reliability import uncertain_rule
    ham = sources == reference
    missed = (labels == classes.index("mel")) & (malignant < threshold)
    best = None
    for margin in np.round(np.arange(0.0, 0.61, 0.05), 2):
        for grey in np.round(np.arange(1.0, -0.01, -0.05), 2):
            close, near_threshold = uncertain_rule(probabilities, malignant, threshold, margin, grey)
            uncertain = close | near_threshold
            warned = uncertain | warned_unusual
            ham_rate = warned[ham].mean() if ham.any() else 0.0
            caught = warned[missed].mean() if missed.any() else 0.0
            # Within the budget: most missed melanomas warned. If unusual images alone
            # exceed it, the quietest rule (no "uncertain" at all) wins.
            key = (ham_rate <= budget, caught if ham_rate <= budget else 0.0, -ham_rate)
            if best is None or key > best[0]:
                best = (key, float(margin), float(grey))
    return {"margin": best[1], "grey_zone": best[2]}


# --- measuring ------------------------------------------------------------------------

def warnings_of(reliability, outputs, probabilities, malignant, threshold):
    """Per image, as served: refused; a warning that replaces the diagnosis as the headline
    (no lesion found, or an unusual image); uncertain."""
    refused, unusual, uncertain = [], [], []
    for index in range(len(probabilities)):
        refusal, marks = reliability.screen_features(outputs["colourfulness"][index],
                                                     outputs["image_features"][index])
        _, far, _, unsure = reliability.assess(probabilities[index], malignant[index], threshold,
                                              outputs["features"][index], marks)
        refused.append(refusal is not None)
        unusual.append(far or not outputs["found"][index])
        uncertain.append(bool(unsure))
    return np.array(refused), np.array(unusual), np.array(uncertain)


def rate(mask, selected=None):
    selected = np.ones(len(mask), bool) if selected is None else selected
    return round(float(mask[selected].mean()), 4) if selected.any() else None


def main(argv=None):
    args = parse_args(argv)
    from skinlesion.classify import load_classifier
    from training.datasets import read_dataset, split_sources
    from skinlesion.cards import card_path, read_card, save_card, sha256_of
    from skinlesion.reliability import FeatureDensity, ReliabilityModel, calibrated_probabilities
    from training import not_dermoscopy
    from training.metrics import (calibration, classification_metrics, malignant_scores, melanoma_vs_nevus_auc,
                                  referral_by_rule, referral_figures)
    from training.plots import plot_reliability
    from training.evaluate import serving_pass, summary_of

    started = time.time()
    model_path = Path(args.model)
    card = read_card(model_path)
    # Fit from the bare model (temperature 1, no gate); the card is not touched until the
    # end, when it is replaced in one step: a crash leaves the shipped card as it was.
    classifier = load_classifier(model_path, "keras", fitted_parts=False)
    classes = classifier.classes
    split = card["split"]
    train, val = split_sources(args.data, classes, split["val_fraction"], split["seed"])
    rng = np.random.default_rng(args.seed)
    train = [train[i] for i in sorted(rng.choice(len(train), min(args.train_sample, len(train)),
                                                 replace=False))]

    def run(samples, name, images=None):
        began = time.time()
        outputs = serving_pass(classifier, samples, args.models, images, screen_inputs=True)
        print(f"{name}: {len(outputs['found'])} images in {time.time() - began:.0f}s", flush=True)
        return outputs

    fitted_on, validation = run(train, "training sample"), run(val, "validation")
    val_labels = np.array([classes.index(s.label) for s in val])
    val_sources = np.array([s.source for s in val])
    reference = val_sources[0]  # the first --data folder (HAM10000): the warning budget's base
    negatives = not_dermoscopy.generate(args.not_dermoscopy_per_kind, seed=args.seed)
    negative_kinds = np.array([kind for kind, found in negatives.items() for _ in found])
    negative_outputs = run(None, "not dermoscopy (gate training)",
                           [image for found in negatives.values() for image in found])
    tests = not_dermoscopy.generate(12, seed=args.seed + 1)
    test_kinds = np.array([kind for kind, found in tests.items() for _ in found])
    test_outputs = run(None, "not dermoscopy (test)", [image for found in tests.values() for image in found])

    # 1-2. temperature, then the referral threshold on calibrated probabilities.
    temperature = fit_temperature(validation["view_logits"], val_labels)
    probabilities = calibrated_probabilities(validation["view_logits"], temperature)
    raw = calibrated_probabilities(validation["view_logits"], 1.0)
    referral = None
    if "mel" in classes:
        referral = referral_by_rule(val_labels, probabilities, val_sources, classes,
                                    args.referral_sensitivity, args.referral_rule)
        names = ", ".join(dict.fromkeys(val_sources))
        referral["chosen_on"] = (f"the calibrated serving-pipeline validation images of each of {names} "
                                 f"({len(val)} images)" if args.referral_rule == "every_source" else
                                 f"calibrated serving-pipeline validation images pooled from {names} "
                                 f"({len(val)} images)")
    threshold = referral["malignant_probability"] if referral else None

    # 3-4. feature statistics and the gate.
    crop_density = FeatureDensity.fit(fitted_on["features"], args.components)
    image_density = FeatureDensity.fit(fitted_on["image_features"], args.components)
    gate = fit_gate(fitted_on["image_features"], negative_outputs["image_features"], args.seed)

    # 5. thresholds, from validation images.
    val_gate = gate.probability(validation["image_features"])
    val_image = image_density.score(validation["image_features"])
    val_crop = crop_density.score(validation["features"])
    colour_floor = float(np.percentile(validation["colourfulness"], 0.1))
    mark_scores = {"gate_mark": val_gate, "image_mark": val_image, "unusual_ood": val_crop}
    no_lesion = ~np.asarray(validation["found"], bool)
    marks = mark_thresholds(mark_scores, val_sources, no_lesion, args.unusual_budget)
    thresholds = {
        "min_colourfulness": round(min(4.0, 0.5 * colour_floor), 3),
        "gate_refuse": round(float(min(0.999, max(0.9, 1 - (1 - val_gate.max()) / REFUSE_MARGIN))), 6),
        "gate_mark": round(max(GATE_MARK_FLOOR, marks["gate_mark"]), 6),
        "image_refuse": float(val_image.max() * REFUSE_MARGIN),
        "image_mark": marks["image_mark"],
        "unusual_ood": marks["unusual_ood"],
    }
    val_groups = np.array([f"{s.source}/{s.group}" for s in val])
    unusual_held_out = held_out_unusual(mark_scores, val_sources, val_groups, no_lesion,
                                        args.unusual_budget, args.seed)
    settings = {"temperature": round(temperature, 4), "thresholds": thresholds,
                "uncertain": {"margin": 0.0, "grey_zone": 1.0}}
    reliability = ReliabilityModel(settings, crop_density, image_density, gate)
    malignant = malignant_scores(probabilities, classes)
    _, val_unusual, _ = warnings_of(reliability, validation, probabilities, malignant, threshold)
    if threshold is not None:
        settings["uncertain"] = choose_uncertain_rule(probabilities, malignant, threshold, val_unusual,
                                                      val_labels, val_sources, classes,
                                                      args.uncertain_budget, reference)

    # 6. measure, write.
    npz = model_path.with_name(model_path.stem + ".reliability.npz")
    reliability.save_arrays(npz)
    measured = {"validation": measure(reliability, validation, val_labels, val_sources, classes,
                                      temperature, threshold),
                "unusual_budget": args.unusual_budget,
                "unusual_held_out": {"share": unusual_held_out,
                                     "method": "marks chosen on half of each source's validation "
                                               "lesions, counted on the other half, both ways round"}}
    plots = Path(args.plots) if args.plots else None
    if plots:
        plots.mkdir(parents=True, exist_ok=True)
        plot_reliability(calibration(val_labels[val_sources == reference],
                                     probabilities[val_sources == reference]),
                         plots / f"reliability_calibrated_{reference}_val.png",
                         f"{reference} validation, calibrated")
    external = {}
    # The reliability diagrams' data (per bin: confidence, accuracy, count), calibrated.
    diagrams = {f"{reference}_validation": calibration(val_labels[val_sources == reference],
                                                       probabilities[val_sources == reference])["bins"]}
    for folder in args.external:
        found = read_dataset(folder, classes=classes)
        labels = np.array([classes.index(s.label) for s in found])
        outputs = run(found, f"external {found[0].source}")
        name = found[0].source
        measured[name] = measure(reliability, outputs, labels, np.array([name] * len(found)),
                                 classes, temperature, threshold)
        external_probabilities = calibrated_probabilities(outputs["view_logits"], temperature)
        report = classification_metrics(labels, external_probabilities, classes)
        report["melanoma_vs_nevus_auc"] = melanoma_vs_nevus_auc(labels, external_probabilities, classes)
        report["reliability"] = calibration(labels, external_probabilities)
        report["referral"] = referral_figures(labels, external_probabilities, classes, threshold) \
            if threshold is not None else None
        report.update(source=name, data=str(folder), pipeline="serving", split="all")
        external[name] = summary_of(report)
        diagrams[name] = report["reliability"]["bins"]
        if plots:
            plot_reliability(report["reliability"], plots / f"reliability_calibrated_{name}.png",
                             f"{name}, calibrated")
    measured["not_dermoscopy"] = measure_not_dermoscopy(
        reliability, test_outputs, test_kinds, negative_outputs, negative_kinds, fitted_on, args.seed)

    card = read_card(model_path)
    card["reliability"] = dict(settings, file=npz.name, sha256=sha256_of(npz),
                               fitted_by="python -m training.fit_reliability",
                               fitted_on=f"{len(train)} training and {len(val)} validation images of "
                                         f"{', '.join(dict.fromkeys(val_sources))}; "
                                         f"{len(negative_kinds)} generated non-dermoscopic images",
                               fitted=time.strftime("%Y-%m-%d"), measured=measured)
    card["calibration"] = {
        "method": "temperature scaling of the logits, fitted on the pooled validation images",
        "temperature": round(temperature, 4),
        f"ece_{reference}_validation_before": calibration(val_labels[val_sources == reference],
                                                          raw[val_sources == reference])["expected_calibration_error"],
        f"ece_{reference}_validation_after": measured["validation"][reference]["ece"],
        **{f"ece_{name}_after": measured[name][name]["ece"] for name in external},
        "reliability_diagrams": diagrams,
        "diagram_files": f"reliability_calibrated_*.png in {plots}" if plots else None}
    if referral:
        card["referral"] = referral
    if external:
        card["external_validation"] = external
    save_card(model_path, card)
    print(json.dumps({"temperature": temperature, "thresholds": thresholds, "uncertain": settings["uncertain"],
                      "unusual_held_out": unusual_held_out,
                      "referral": referral, "measured": measured}, indent=1))
    print(f"fitted in {(time.time() - started) / 60:.1f} min -> {npz} and {card_path(model_path)}")


def measure(reliability, outputs, labels, sources, classes, temperature, threshold):
    """Per source: ECE, refused / unusual / uncertain / any-warning rates, and the share of
    the melanomas the referral flag misses that carry a warning."""
    from skinlesion.reliability import calibrated_probabilities
    from training.metrics import calibration, malignant_scores
    probabilities = calibrated_probabilities(outputs["view_logits"], temperature)
    malignant = malignant_scores(probabilities, classes)
    refused, unusual, uncertain = warnings_of(reliability, outputs, probabilities, malignant, threshold)
    warned = unusual | uncertain
    correct = probabilities.argmax(1) == labels
    result = {}
    for source in dict.fromkeys(sources):
        inside = sources == source
        figures = {"images": int(inside.sum()),
                   "ece": calibration(labels[inside], probabilities[inside])["expected_calibration_error"],
                   "refused": rate(refused, inside), "unusual": rate(unusual, inside),
                   "uncertain": rate(uncertain, inside), "any_warning": rate(warned, inside),
                   "warned_when_wrong": rate(warned, inside & ~correct),
                   "warned_when_right": rate(warned, inside & correct)}
        if threshold is not None and "mel" in classes:
            missed = inside & (labels == classes.index("mel")) & (malignant < threshold)
            figures["missed_melanomas"] = int(missed.sum())
            figures["missed_melanomas_warned"] = rate(warned, missed)
        result[source] = figures
    return result


def measure_not_dermoscopy(reliability, outputs, kinds, train_outputs, train_kinds, fitted_on, seed):
    """Refused-or-marked (unusual, or no lesion) share per kind of a second generated set;
    and, leaving each kind out of the gate's training in turn, the same for that kind."""
    from skinlesion.reliability import calibrated_probabilities
    probabilities = calibrated_probabilities(outputs["view_logits"], reliability.temperature)

    def judged(model):  # the serving verdicts; "uncertain" does not count here
        refused, unusual, _ = warnings_of(model, outputs, probabilities, np.zeros(len(kinds)), None)
        return refused, refused | unusual

    def by_kind(refused, caught, names):
        return {kind: {"images": int((kinds == kind).sum()), "refused": rate(refused, kinds == kind),
                       "refused_or_marked": rate(caught, kinds == kind)} for kind in names}

    refused, caught = judged(reliability)
    result = {"test_set": by_kind(refused, caught, dict.fromkeys(kinds)),
              "test_set_refused_or_marked": rate(caught), "kind_left_out_of_gate_training": {}}
    caught_unseen = np.zeros(len(kinds), bool)
    for kind in dict.fromkeys(train_kinds):
        held_out = fit_gate(fitted_on["image_features"], train_outputs["image_features"][train_kinds != kind],
                            seed)
        refused, caught = judged(type(reliability)(reliability.settings, reliability.crop_density,
                                                   reliability.image_density, held_out))
        result["kind_left_out_of_gate_training"].update(by_kind(refused, caught, [kind]))
        caught_unseen[kinds == kind] = caught[kinds == kind]
    result["kind_left_out_refused_or_marked"] = rate(caught_unseen)
    return result

if __name__ == "__main__":
    main()
