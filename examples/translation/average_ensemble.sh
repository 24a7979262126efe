#!/usr/bin/env bash
# The Multi30k recipe (multi30k.sh) with two seeds, each keeping its last five epoch
# checkpoints; then on test_2016_flickr (beam 5, detokenized sacreBLEU, same flags as the
# recipe) each seed's checkpoint_best.pt, `rnnkit average` of its last five epochs, and the two
# seeds as one ensemble (best:best and average:average), each with its decoding wall time.
#   bash examples/translation/average_ensemble.sh [../shared/data/multi30k] [OUT]
# PARALLEL=2 trains both seeds at once, one thread each (a 2-core machine); the default trains
# them one after the other on two threads. Run it again to resume (see multi30k.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
M=${1:-../shared/data/multi30k}
OUT=${2:-runs/m30k}
export RNNKIT=${RNNKIT:-.venv/bin/rnnkit}
PARALLEL=${PARALLEL:-1}
mkdir -p "$OUT"
train() {
  THREADS=$((PARALLEL > 1 ? 1 : 2)) SEED=$1 SAVE=$OUT/seed$1 \
    bash examples/translation/multi30k.sh "$M" "$OUT" > "$OUT/seed$1.out" 2> "$OUT/seed$1.log"
}
if [ "$PARALLEL" -gt 1 ]; then
  train 1 &
  first=$!
  # The first run writes the shared binarized data; the second starts once it is there.
  until [ -f "$OUT/data/preprocess.json" ]; do
    kill -0 "$first" 2> /dev/null || { wait "$first"; exit 1; }
    sleep 5
  done
  train 2
  wait "$first"
else
  train 1
  train 2
fi
# decode NAME PATH: translate the raw test source with PATH (a checkpoint or a:b ensemble);
# print NAME, the decoding wall time and BLEU on one line.
decode() {
  local start end
  start=$EPOCHREALTIME
  $RNNKIT generate --path "$2" --input "$M/test_2016_flickr.en" --beam 5 --lenpen 1.0 \
    --max-len-a 1.2 --max-len-b 10 --threads "${DECODE_THREADS:-2}" \
    > "$OUT/$1.hyp.de" 2> /dev/null
  end=$EPOCHREALTIME
  printf '%s\t%.1f s\t%s\n' "$1" "$(awk "BEGIN { print $end - $start }")" \
    "$($RNNKIT score --sys "$OUT/$1.hyp.de" --ref "$M/test_2016_flickr.de" --metric bleu)"
}
for seed in 1 2; do
  $RNNKIT average --inputs "$OUT/seed$seed" --num-epoch-checkpoints 5 \
    --output "$OUT/seed$seed/average5.pt"
  decode "single$seed" "$OUT/seed$seed/checkpoint_best.pt"
  decode "average$seed" "$OUT/seed$seed/average5.pt"
done
decode ensemble2 "$OUT/seed1/checkpoint_best.pt:$OUT/seed2/checkpoint_best.pt"
decode ensemble2-of-averages "$OUT/seed1/average5.pt:$OUT/seed2/average5.pt"
