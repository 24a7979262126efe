#!/usr/bin/env bash
# The ATIS recipe (run.sh's training command) with three seeds, each keeping its last five epoch
# checkpoints; then per seed the single model (checkpoint_last.pt) and `rnnkit average` of the
# last five epochs, and the three seeds' last checkpoints as one ensemble. Valid only. Run from
# the repo root:
#   bash examples/atis/average_ensemble.sh [../shared/data/atis] [OUT]
# PARALLEL=2 trains two seeds at a time (one thread each), for a 2-core machine.
set -euo pipefail
source "$(dirname "$0")/seeds.sh"
SRC=${1:-../shared/data/atis}
OUT=${2:-runs/atis-avg}
RNNKIT=${RNNKIT:-rnnkit}
PARALLEL=${PARALLEL:-1}
SEEDS=(1 2 3)
$RNNKIT preprocess --task tagging --trainpref "$SRC/train" --validpref "$SRC/valid" \
  --destdir "$OUT/data" --force
train() {
  $RNNKIT train "$OUT/data" --arch atis_bilstm --save-dir "$OUT/seed$1" --seed "$1" \
    --optimizer adam --lr 0.001 --batch-size 16 --max-epoch ${EPOCHS:-40} \
    --best-checkpoint-metric f1 --maximize-best-checkpoint-metric --keep-last-epochs 5 \
    --log-interval 0 --threads 1 2> "$OUT/seed$1.log"
}
train_seeds "${SEEDS[@]}"
# score NAME PATH: tag the raw valid set with PATH (a checkpoint or a:b:c ensemble), print F1,
# tag accuracy and intent accuracy on one line.
score() {
  $RNNKIT generate --path "$2" --input "$SRC/valid/seq.in" --print-label --threads 1 \
    > "$OUT/$1.out" 2> /dev/null
  cut -f1 "$OUT/$1.out" > "$OUT/$1.label"
  cut -f2 "$OUT/$1.out" > "$OUT/$1.tags"
  printf '%s\t%s\t%s\n' "$1" \
    "$($RNNKIT score --sys "$OUT/$1.tags" --ref "$SRC/valid/seq.out" --metric f1,acc)" \
    "$($RNNKIT score --sys "$OUT/$1.label" --ref "$SRC/valid/label" --metric label_acc)"
}
members=()
averages=()
for seed in "${SEEDS[@]}"; do
  $RNNKIT average --inputs "$OUT/seed$seed" --num-epoch-checkpoints 5 \
    --output "$OUT/seed$seed/average5.pt"
  score "single$seed" "$OUT/seed$seed/checkpoint_last.pt"
  score "average$seed" "$OUT/seed$seed/average5.pt"
  members+=("$OUT/seed$seed/checkpoint_last.pt")
  averages+=("$OUT/seed$seed/average5.pt")
done
score ensemble3 "$(IFS=:; echo "${members[*]}")"
score ensemble3-of-averages "$(IFS=:; echo "${averages[*]}")"
