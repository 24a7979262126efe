#!/usr/bin/env bash
# Char-RNN on Tiny Shakespeare: split, binarize, train (36 minutes of wall time at most), score,
# sample. Run from the repo root:
#   bash examples/shakespeare/run.sh [../shared/data/tinyshakespeare/input.txt] [OUT]
set -euo pipefail
SRC=${1:-../shared/data/tinyshakespeare/input.txt}
OUT=${2:-runs/shakespeare}
RNNKIT=${RNNKIT:-rnnkit}
python examples/shakespeare/split.py "$SRC" "$OUT/text"
# --keep-empty: the blank line between speeches is part of the text a char model learns.
$RNNKIT preprocess --task lm --tokenizer char --keep-empty --force \
  --trainpref "$OUT/text/train.txt" --validpref "$OUT/text/valid.txt" --destdir "$OUT/data"
$RNNKIT train "$OUT/data" --arch char_rnn --save-dir "$OUT/ckpt" \
  --optimizer adam --lr 0.002 --batch-size 64 --bptt 100 --clip-norm 5 \
  --lr-scheduler plateau --lr-decay 0.5 --lr-patience 0 \
  --max-epoch 30 --stop-time-hours ${HOURS:-0.6} --threads ${THREADS:-0}
$RNNKIT score "$OUT/data" --path "$OUT/ckpt/checkpoint_best.pt" --subset valid
$RNNKIT sample --path "$OUT/ckpt/checkpoint_best.pt" --prime "ROMEO:" --length 500 \
  --temperature 0.8 --seed 1
