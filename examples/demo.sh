#!/usr/bin/env bash
# `make demo`: the whole pipeline on the bundled Tiny Shakespeare slice, in about a minute on two
# idle CPU cores. Binarize (char level), train a small char-RNN, score it, print a sample.
set -euo pipefail
cd "$(dirname "$0")/.."
RNNKIT=${RNNKIT:-.venv/bin/rnnkit}
OUT=${OUT:-demo-out}
DATA=examples/data/shakespeare

$RNNKIT preprocess --task lm --tokenizer char --keep-empty --force \
  --trainpref $DATA/train.txt --validpref $DATA/valid.txt --destdir $OUT/data
$RNNKIT train $OUT/data --arch char_rnn --save-dir $OUT/ckpt --reset \
  --hidden-size 256 --embed-dim 48 --dropout 0 \
  --optimizer adam --lr 0.004 --batch-size 32 --bptt 64 --clip-norm 5 \
  --max-epoch ${EPOCHS:-15} --no-epoch-checkpoints --log-interval 15
$RNNKIT score $OUT/data --path $OUT/ckpt/checkpoint_best.pt --subset valid
echo "--- sample (rnnkit sample --path $OUT/ckpt/checkpoint_best.pt --prime ROMEO: --seed 1) ---" >&2
$RNNKIT sample --path $OUT/ckpt/checkpoint_best.pt --prime "ROMEO:" --length 300 \
  --temperature 0.8 --seed 1
