#!/usr/bin/env bash
# Multi30k En-De ablation in the style of Luong et al. 2015, Table 1, at a size 2 CPU cores can
# afford: every variant gets the same model width and the same number of updates, then test
# BLEU (beam 5, detokenized sacreBLEU) is printed per variant.
#   examples/translation/ablation.sh DATA_DIR OUT_DIR [UPDATES] [PARALLEL]
# DATA_DIR: `rnnkit preprocess` output of Multi30k (see README.md). PARALLEL runs go at once,
# one thread each (2 on a 2-core machine).
set -euo pipefail
cd "$(dirname "$0")/../.."
RNNKIT=${RNNKIT:-.venv/bin/rnnkit}
DATA=$1
OUT=$2
UPDATES=${3:-1000}
PARALLEL=${4:-2}
SIZE="--encoder-embed-dim 128 --encoder-hidden-size 128 --encoder-bidirectional true
  --decoder-embed-dim 128 --decoder-hidden-size 128 --dropout 0.2
  --share-decoder-input-output-embed true"
TRAIN="--optimizer adam --lr 0.002 --batch-size 64 --clip-norm 1 --threads 1
  --criterion label_smoothed_cross_entropy --label-smoothing 0.1 --max-update $UPDATES
  --no-epoch-checkpoints --log-interval 120"
declare -A VARIANT=(
  [1-no-attention]="--arch attention_seq2seq --attention none --input-feeding false"
  [2-global]="--arch attention_seq2seq --attention general --input-feeding false"
  [3-global-feed]="--arch attention_seq2seq --attention general --input-feeding true"
  [4-local-p-feed]="--arch attention_seq2seq --attention general --input-feeding true --attention-mode local-p"
  [5-global-feed-copy]="--arch attention_seq2seq --attention general --input-feeding true --copy true"
)
mkdir -p "$OUT"
for name in $(printf '%s\n' "${!VARIANT[@]}" | sort); do
  # shellcheck disable=SC2086
  (
    $RNNKIT train "$DATA" ${VARIANT[$name]} $SIZE $TRAIN --save-dir "$OUT/$name" \
      >"$OUT/$name.log" 2>&1
    $RNNKIT generate "$DATA" --path "$OUT/$name/checkpoint_last.pt" --gen-subset test \
      --beam 5 --quiet --threads 1 2>/dev/null | tail -1 >"$OUT/$name.bleu"
  ) &
  while [ "$(jobs -rp | wc -l)" -ge "$PARALLEL" ]; do sleep 5; done
done
wait
for name in $(printf '%s\n' "${!VARIANT[@]}" | sort); do
  printf '%-22s %s\n' "$name" "$(cat "$OUT/$name.bleu")"
done
