#!/usr/bin/env bash
# Issue 27: the shipped candidate of the recipe the leave-one-source-out runs favour (N128:
# one MobileNetV2, 128 px lesion crops, optics augmentation, each source among its own labels),
# trained on every source, then what belongs to it: reliability fit (temperature, referral
# threshold on each source's validation melanomas, feature statistics), validation and the
# derm7pt figures (reported once, not used to choose), and its LiteRT export. Nothing is written
# to models/ here; shipping is copying runs/cand/n128all/ there.
set -x
cd /work/main
S=../shared/data
R=runs/cand/n128all
mkdir -p $R
[ -f $R/classifier_3class.h5 ] || python -m training.train_classifier --task 3class \
  --data $S/ham10000 $S/isic2017 $S/isic_acral --init ../shared/weights/dog_breed_mobilenetv2.h5 \
  --label-sets source --input-size 128 --epochs 10 --patience 10 --augment optics --threads 2 --workers 2 \
  --run-dir $R --out $R/classifier_3class.h5 --resume
python -m training.fit_reliability --model $R/classifier_3class.h5 --data $S/ham10000 $S/isic2017 $S/isic_acral \
  --external $S/derm7pt --plots $R/plots --referral-rule every_source --referral-sensitivity 0.95
python -m training.evaluate --model $R/classifier_3class.h5 --data $S/ham10000 $S/isic2017 $S/isic_acral \
  --split val --external $S/derm7pt --out $R/eval --update-card
python -m training.export_litert --model $R/classifier_3class.h5
echo CANDIDATE DONE
