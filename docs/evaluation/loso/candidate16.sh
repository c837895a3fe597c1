#!/usr/bin/env bash
# Issue 27, fourth session: the N128 recipe trained on every source for 16 epochs (the shipped
# members trained 14-16), with two training seeds, each with what belongs to it (reliability fit,
# validation, derm7pt reported once). The rule that decides is in other_clinics.md, written
# before this ran. Nothing is written to models/ here.
set -x
cd /work/main
S=../shared/data
for SEED in 42 7; do
  R=runs/cand/n128all16_s$SEED
  mkdir -p $R
  [ -f $R/classifier_3class.h5 ] || python -m training.train_classifier --task 3class \
    --data $S/ham10000 $S/isic2017 $S/isic_acral --init ../shared/weights/dog_breed_mobilenetv2.h5 \
    --label-sets source --input-size 128 --epochs 16 --patience 16 --augment optics --threads 2 --workers 2 \
    --train-seed $SEED --run-dir $R --out $R/classifier_3class.h5 --resume
  [ -f $R/eval.done ] || {
    python -m training.fit_reliability --model $R/classifier_3class.h5 --data $S/ham10000 $S/isic2017 $S/isic_acral \
      --external $S/derm7pt --plots $R/plots --referral-rule every_source --referral-sensitivity 0.95 &&
    python -m training.evaluate --model $R/classifier_3class.h5 --data $S/ham10000 $S/isic2017 $S/isic_acral \
      --split val --external $S/derm7pt --out $R/eval --update-card && touch $R/eval.done; }
  echo "SEED $SEED DONE"
done
echo CANDIDATES DONE
