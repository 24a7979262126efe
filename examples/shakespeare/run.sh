#!/usr/bin/env bash
# Char-RNN on Tiny Shakespeare: split, binarize, train, sample. Run from the repo root:
#   bash examples/shakespeare/run.sh [../shared/data/tinyshakespeare/input.txt] [OUT]
set -euo pipefail
SRC=${1:-../shared/data/tinyshakespeare/input.txt}
OUT=${2:-runs/shakespeare}
RNNKIT=${RNNKIT:-rnnkit}
python examples/shakespeare/split.py "$SRC" "$OUT/text"
$RNNKIT preprocess --task lm --tokenizer char --trainpref "$OUT/text/train.txt" \
  --validpref "$OUT/text/valid.txt" --destdir "$OUT/data" --keep-empty --force
$RNNKIT train "$OUT/data" --arch char_rnn --save-dir "$OUT/ckpt" \
  --optimizer adam --lr 0.002 --batch-size 64 --bptt 100 --clip-norm 5 \
  --lr-scheduler plateau --lr-decay 0.5 --lr-patience 0 \
  --max-epoch ${EPOCHS:-10} --threads ${THREADS:-0} --validate-interval-updates 500
$RNNKIT score "$OUT/data" --path "$OUT/ckpt/checkpoint_best.pt" --subset valid
$RNNKIT sample --path "$OUT/ckpt/checkpoint_best.pt" --prime "ROMEO:" --length 500 --seed 1 --temperature 0.8
