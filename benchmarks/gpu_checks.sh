#!/usr/bin/env bash
# The GPU checks that CPU machines cannot run, as one script with a bounded time per step:
# train on CUDA (cuDNN) for lstm_lm_zaremba_medium and the multi30k preset, fp32 vs --amp bf16,
# --compile, nccl with one process (torchrun), and generate beam 5 on CUDA. Each step's log and
# train_log.jsonl go to OUT; benchmarks/gpu_summary.py prints tokens/s and failures per step.
#
#   bash benchmarks/gpu_checks.sh DATA OUT
# DATA holds binarized `ptb` (task lm) and `m30k` (translation, sentencepiece 8k joint) made by
# `rnnkit preprocess` as in examples/ptb/run.sh and examples/translation/multi30k.sh.
# RNNKIT names the command (default: rnnkit); UPDATES / MT_UPDATES the updates per LM / MT
# training step (the LM stays inside its first epoch of 1,328 updates); STEP_S each step's limit.
set -uo pipefail
DATA=${1:?DATA dir with ptb/ and m30k/}
OUT=${2:?output dir}
RNNKIT=${RNNKIT:-rnnkit}
UPDATES=${UPDATES:-1200}
MT_UPDATES=${MT_UPDATES:-600}
STEP_S=${STEP_S:-75}
mkdir -p "$OUT"

step() {  # step NAME TIMEOUT_S COMMAND...: run, log, record exit status and wall seconds
  local name=$1 limit=$2
  shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  echo "$name rc=$rc wall_s=$((SECONDS - t0))" | tee -a "$OUT/steps.txt"
}

lm() {  # lm NAME [extra flags]: Zaremba medium (2x650, dropout 0.5), the paper's SGD recipe
  local name=$1
  shift
  step "$name" "$STEP_S" $RNNKIT train "$DATA/ptb" --arch lstm_lm_zaremba_medium \
    --save-dir "$OUT/$name" --device cuda --optimizer sgd --lr 1 --batch-size 20 --bptt 35 \
    --clip-norm 5 --loss-average sequences --max-update "$UPDATES" --log-interval 1 \
    --no-epoch-checkpoints "$@"
}

mt() {  # mt NAME [extra flags]: the full multi30k preset (the CPU recipe shrinks its decoder)
  local name=$1
  shift
  step "$name" "$STEP_S" $RNNKIT train "$DATA/m30k" --arch multi30k --save-dir "$OUT/$name" \
    --device cuda --optimizer adam --lr 0.002 --batch-size 64 --clip-norm 1 \
    --criterion label_smoothed_cross_entropy --label-smoothing 0.1 \
    --max-update "$MT_UPDATES" --log-interval 1 --no-epoch-checkpoints "$@"
}

{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
    "cudnn", torch.backends.cudnn.version(), torch.cuda.get_device_name())'
} >"$OUT/env.txt" 2>&1
: >"$OUT/steps.txt"

lm lm_fp32
lm lm_bf16 --amp bf16
lm lm_compile --compile
# nccl with one process: torchrun's world of one, the path several machines take.
step lm_nccl1 "$STEP_S" torchrun --standalone --nproc-per-node 1 -m rnnkit_cli train "$DATA/ptb" \
  --arch lstm_lm_zaremba_medium --save-dir "$OUT/lm_nccl1" --device cuda --optimizer sgd --lr 1 \
  --batch-size 20 --bptt 35 --clip-norm 5 --loss-average sequences --max-update "$UPDATES" \
  --log-interval 1 --no-epoch-checkpoints
mt mt_fp32
mt mt_bf16 --amp bf16
for amp in none bf16; do
  step "gen_beam5_$amp" "$STEP_S" $RNNKIT generate "$DATA/m30k" --path "$OUT/mt_fp32/checkpoint_last.pt" \
    --gen-subset test --beam 5 --batch-size 128 --device cuda --amp "$amp" --quiet
done
