#!/usr/bin/env bash
# Issue 27: ship a 3-class candidate chosen by the rule in other_clinics.md. Its reliability parts
# and validation figures were refitted in its run folder (candidate16.sh); here: into models/,
# the resolution check into its card, its LiteRT export, and the similar-case gallery of it.
set -ex
cd /work/main
S=../shared/data
R=$1   # e.g. runs/cand/n128all16_s42
cp $R/classifier_3class.h5 $R/classifier_3class.json $R/classifier_3class.reliability.npz models/
python -m training.resolution_check --model models/classifier_3class.h5 --data $S/ham10000 $S/isic2017 $S/isic_acral --write
python -m training.export_litert --model models/classifier_3class.h5
python -m training.build_gallery --model models/classifier_3class.h5
echo SHIPPED
