#!/usr/bin/env bash
# Issue 27, fifth session: the 7-class model through the recipe the 3-class runs chose (N128:
# one MobileNetV2, 128 px lesion crops, optics augmentation, each source among its own labels).
# 1. the candidate: all three sources, 16 epochs, training seed 42, refitted (the shipped 7-class
#    model's 90% every-source referral rule) and evaluated through the serving pipeline;
# 2. the left-out evidence: the same recipe without the acral clinics (6 epochs, as the 3-class
#    left-out runs), and the shipped 7-class average (which never saw them), each measured on
#    all of isic_acral.
# The rule that decides is in other_clinics.md, written before this ran. Nothing goes to models/.
set -x
cd /work/main
S=../shared/data
R=runs/cand7/n128all16_s42
mkdir -p $R runs/loso7
[ -f $R/classifier_7class.h5 ] || python -m training.train_classifier --task 7class \
  --data $S/ham10000 $S/isic2017 $S/isic_acral --init ../shared/weights/dog_breed_mobilenetv2.h5 \
  --label-sets source --input-size 128 --epochs 16 --patience 16 --augment optics --threads 2 --workers 2 \
  --train-seed 42 --run-dir $R --out $R/classifier_7class.h5 --resume
[ -f $R/eval.done ] || {
  python -m training.fit_reliability --model $R/classifier_7class.h5 --data $S/ham10000 $S/isic2017 $S/isic_acral \
    --external $S/derm7pt --plots $R/plots --referral-rule every_source --referral-sensitivity 0.9 &&
  python -m training.evaluate --model $R/classifier_7class.h5 --data $S/ham10000 $S/isic2017 $S/isic_acral \
    --split val --external $S/derm7pt --out $R/eval --update-card && touch $R/eval.done; }
L=runs/loso7/n128_noacral
[ -f $L/classifier_7class.h5 ] || python -m training.train_classifier --task 7class \
  --data $S/ham10000 $S/isic2017 --init ../shared/weights/dog_breed_mobilenetv2.h5 \
  --label-sets source --input-size 128 --epochs 6 --patience 6 --augment optics --threads 2 --workers 2 \
  --train-seed 42 --run-dir $L --out $L/classifier_7class.h5 --resume
[ -f runs/loso7/eval/n128_acral/metrics.json ] || python -m training.evaluate \
  --model $L/classifier_7class.h5 --data $S/isic_acral --split all --out runs/loso7/eval/n128_acral
[ -f runs/loso7/eval/shipped_acral/metrics.json ] || python -m training.evaluate \
  --model models/classifier_7class.h5 --data $S/isic_acral --split all --out runs/loso7/eval/shipped_acral
echo CANDIDATE7 DONE
