#!/usr/bin/env bash
# The toy date-normalisation task end to end: generate pairs, binarize, train a small attention
# model (about a minute on two CPU cores), translate from stdin, score the test set, plot the
# attention of one sentence. Usage: examples/translation/toy.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
RNNKIT=${RNNKIT:-.venv/bin/rnnkit}
PYTHON=${PYTHON:-.venv/bin/python}
OUT=${1:-toy-out}

$PYTHON examples/translation/toy_dates.py $OUT/raw --train 4000
$RNNKIT preprocess --task translation -s src -t tgt --force \
  --trainpref $OUT/raw/train --validpref $OUT/raw/valid --testpref $OUT/raw/test \
  --destdir $OUT/data
$RNNKIT train $OUT/data --arch attention_seq2seq --save-dir $OUT/ckpt --reset \
  --encoder-embed-dim 32 --encoder-hidden-size 64 --encoder-bidirectional true \
  --decoder-embed-dim 32 --decoder-hidden-size 64 \
  --optimizer adam --lr 0.01 --batch-size 32 --clip-norm 1 --max-epoch ${EPOCHS:-8} \
  --no-epoch-checkpoints --log-interval 15 --threads 1
echo "--- translating from stdin ---" >&2
printf 'tuesday , 9 may 1 9 9 8\nthe 2 1 st of december 2 0 1 2\n' \
  | $RNNKIT generate --path $OUT/ckpt/checkpoint_best.pt --input - --beam 5 \
    --plot-attention $OUT/attention --threads 1
$RNNKIT generate $OUT/data --path $OUT/ckpt/checkpoint_best.pt --gen-subset test --quiet
