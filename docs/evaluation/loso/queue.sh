#!/usr/bin/env bash
# Leave-one-source-out, issue 27: the same recipe at 224 and 128 px, trained without one source,
# measured on all of that source. 6 epochs (cheaper than a shipped run).
set -x
cd /work/main
S=../shared/data
train() {  # name size data...
  local name=$1 size=$2; shift 2
  [ -f runs/loso/$name/classifier_3class.h5 ] && return
  python -m training.train_classifier --task 3class --data "$@" \
    --init ../shared/weights/dog_breed_mobilenetv2.h5 --label-sets source \
    --input-size $size --epochs 6 --patience 6 --augment optics --threads 2 --workers 2 \
    --run-dir runs/loso/$name --out runs/loso/$name/classifier_3class.h5 --resume
}
evaluate() {  # name model data
  [ -f runs/loso/eval/$1/metrics.json ] && return
  python -m training.evaluate --model $2 --data $3 --split all --out runs/loso/eval/$1
}
train n224 224 $S/ham10000 $S/isic2017
evaluate n224_acral runs/loso/n224/classifier_3class.h5 $S/isic_acral
evaluate shipped_acral models/classifier_3class.h5 $S/isic_acral
train n128 128 $S/ham10000 $S/isic2017
evaluate n128_acral runs/loso/n128/classifier_3class.h5 $S/isic_acral
train m224 224 $S/ham10000 $S/isic_acral
evaluate m224_isic2017 runs/loso/m224/classifier_3class.h5 $S/isic2017
train m128 128 $S/ham10000 $S/isic_acral
evaluate m128_isic2017 runs/loso/m128/classifier_3class.h5 $S/isic2017
echo QUEUE DONE
