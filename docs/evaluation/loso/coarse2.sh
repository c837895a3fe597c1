#!/usr/bin/env bash
# Issue 27, third session: the coarse recipe at 128 px on both folds, and at 224 px on the ISIC 2017
# fold, so that resolution x augmentation is measured on both left-out sources.
set -x
cd /work/main
S=../shared/data
train() {  # name size augment data...
  local name=$1 size=$2 augment=$3; shift 3
  [ -f runs/loso/$name/classifier_3class.h5 ] && return
  python -m training.train_classifier --task 3class --data "$@" \
    --init ../shared/weights/dog_breed_mobilenetv2.h5 --label-sets source \
    --input-size $size --epochs 6 --patience 6 --augment $augment --threads 2 --workers 2 \
    --run-dir runs/loso/$name --out runs/loso/$name/classifier_3class.h5 --resume
}
evaluate() {  # name model data
  [ -f runs/loso/eval/$1/metrics.json ] && return
  python -m training.evaluate --model $2 --data $3 --split all --out runs/loso/eval/$1
}
train c128 128 coarse $S/ham10000 $S/isic2017
evaluate c128_acral runs/loso/c128/classifier_3class.h5 $S/isic_acral
train mc128 128 coarse $S/ham10000 $S/isic_acral
evaluate mc128_isic2017 runs/loso/mc128/classifier_3class.h5 $S/isic2017
train mc224 224 coarse $S/ham10000 $S/isic_acral
evaluate mc224_isic2017 runs/loso/mc224/classifier_3class.h5 $S/isic2017
echo COARSE2 DONE
