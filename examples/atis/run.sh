#!/usr/bin/env bash
# Joint slot filling and intent detection on ATIS with a BiLSTM (Liu & Lane 2016's joint loss):
# binarize, train three seeds for 40 epochs each, tag the raw valid set with the three as one
# ensemble (the recipe's result) and with seed 1 alone, score it. Run from the repo root:
#   bash examples/atis/run.sh [../shared/data/atis] [OUT]
# PARALLEL=2 trains two seeds at a time (one thread each), for a 2-core machine.
set -euo pipefail
source "$(dirname "$0")/seeds.sh"
SRC=${1:-../shared/data/atis}
OUT=${2:-runs/atis}
RNNKIT=${RNNKIT:-rnnkit}
PARALLEL=${PARALLEL:-1}
$RNNKIT preprocess --task tagging --trainpref "$SRC/train" --validpref "$SRC/valid" \
  --destdir "$OUT/data" --force
# Adam 1e-3, 16 sentences a batch (grouped by length), 40 epochs; checkpoint_best.pt is the
# epoch with the best valid slot F1 (so the best-epoch number is selected on valid). Seed 1
# trains into bilstm/ (as before the ensemble), seeds 2 and 3 into bilstm-seed2/3.
train() {
  local dir=bilstm
  [ "$1" = 1 ] || dir=bilstm-seed$1
  $RNNKIT train "$OUT/data" --arch atis_bilstm --save-dir "$OUT/$dir" --seed "$1" \
    --optimizer adam --lr 0.001 --batch-size 16 --max-epoch ${EPOCHS:-40} \
    --best-checkpoint-metric f1 --maximize-best-checkpoint-metric --no-epoch-checkpoints \
    --threads ${THREADS:-1}
}
train_seeds 1 2 3
# Score the raw files (the one valid tag and intent that train lacks count as misses here).
# score NAME CHECKPOINT(S): one line per input line: the intent, a tab, then one tag per token.
score() {
  $RNNKIT generate --path "$2" --input "$SRC/valid/seq.in" --print-label --threads 1 \
    > "$OUT/valid.$1.out"
  cut -f1 "$OUT/valid.$1.out" > "$OUT/valid.$1.label"
  cut -f2 "$OUT/valid.$1.out" > "$OUT/valid.$1.tags"
  echo "$1 ($2):"
  $RNNKIT score --sys "$OUT/valid.$1.tags" --ref "$SRC/valid/seq.out" --metric f1,acc
  $RNNKIT score --sys "$OUT/valid.$1.label" --ref "$SRC/valid/label" --metric label_acc
}
score ensemble "$OUT/bilstm/checkpoint_last.pt:$OUT/bilstm-seed2/checkpoint_last.pt:$OUT/bilstm-seed3/checkpoint_last.pt"
score last "$OUT/bilstm/checkpoint_last.pt"
score best "$OUT/bilstm/checkpoint_best.pt"
