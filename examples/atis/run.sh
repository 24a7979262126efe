#!/usr/bin/env bash
# Joint slot filling and intent detection on ATIS with a BiLSTM (Liu & Lane 2016's joint loss):
# binarize, train 40 epochs, tag the raw valid set, score it. Run from the repo root:
#   bash examples/atis/run.sh [../shared/data/atis] [OUT]
set -euo pipefail
SRC=${1:-../shared/data/atis}
OUT=${2:-runs/atis}
RNNKIT=${RNNKIT:-rnnkit}
$RNNKIT preprocess --task tagging --trainpref "$SRC/train" --validpref "$SRC/valid" \
  --destdir "$OUT/data" --force
# Adam 1e-3, 16 sentences a batch (grouped by length), 40 epochs; checkpoint_best.pt is the
# epoch with the best valid slot F1 (so the best-epoch number is selected on valid).
$RNNKIT train "$OUT/data" --arch atis_bilstm --save-dir "$OUT/bilstm" \
  --optimizer adam --lr 0.001 --batch-size 16 --max-epoch 40 \
  --best-checkpoint-metric f1 --maximize-best-checkpoint-metric --no-epoch-checkpoints \
  --threads ${THREADS:-1}
# Score the raw files (the one valid tag and intent that train lacks count as misses here).
for ckpt in last best; do
  # One line per input line: the intent, a tab, then one tag per token.
  $RNNKIT generate --path "$OUT/bilstm/checkpoint_$ckpt.pt" --input "$SRC/valid/seq.in" \
    --print-label --threads 1 > "$OUT/valid.$ckpt.out"
  cut -f1 "$OUT/valid.$ckpt.out" > "$OUT/valid.$ckpt.label"
  cut -f2 "$OUT/valid.$ckpt.out" > "$OUT/valid.$ckpt.tags"
  echo "checkpoint_$ckpt.pt:"
  $RNNKIT score --sys "$OUT/valid.$ckpt.tags" --ref "$SRC/valid/seq.out" --metric f1,acc
  $RNNKIT score --sys "$OUT/valid.$ckpt.label" --ref "$SRC/valid/label" --metric label_acc
done
