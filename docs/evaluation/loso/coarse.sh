#!/usr/bin/env bash
set -x
cd /work/main
S=../shared/data
python -m training.train_classifier --task 3class --data $S/ham10000 $S/isic2017 \
  --init ../shared/weights/dog_breed_mobilenetv2.h5 --label-sets source \
  --input-size 224 --epochs 6 --patience 6 --augment coarse --threads 2 --workers 2 \
  --run-dir runs/loso/c224 --out runs/loso/c224/classifier_3class.h5 --resume
python -m training.evaluate --model runs/loso/c224/classifier_3class.h5 --data $S/isic_acral --split all --out runs/loso/eval/c224_acral
echo COARSE DONE
