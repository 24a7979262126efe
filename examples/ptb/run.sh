#!/usr/bin/env bash
# Zaremba et al. (2014) small LSTM LM on PTB: binarize, train 13 epochs, score. Run from the
# repo root:  bash examples/ptb/run.sh [../shared/data/ptb] [OUT]
set -euo pipefail
SRC=${1:-../shared/data/ptb}
OUT=${2:-runs/ptb}
RNNKIT=${RNNKIT:-rnnkit}
$RNNKIT preprocess --task lm --trainpref "$SRC/ptb.train.txt" --validpref "$SRC/ptb.valid.txt" \
  --destdir "$OUT/data" --force
# The paper's recipe: SGD lr 1, halved after every epoch past epoch 4, 13 epochs, batch 20,
# bptt 35, clip 5, init ±0.1, loss summed over the 35 steps and averaged over the batch.
$RNNKIT train "$OUT/data" --arch lstm_lm_zaremba_small --save-dir "$OUT/small" \
  --optimizer sgd --lr 1 --lr-scheduler zaremba --decay-start-epoch 4 --lr-decay 0.5 \
  --max-epoch 13 --batch-size 20 --bptt 35 --clip-norm 5 --loss-average sequences \
  --threads ${THREADS:-0}
$RNNKIT score "$OUT/data" --path "$OUT/small/checkpoint_best.pt" --subset valid
