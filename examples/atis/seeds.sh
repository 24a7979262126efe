# Sourced by run.sh and average_ensemble.sh. train_seeds SEED...: run `train SEED` (the
# caller's function) for every seed, PARALLEL at a time (default 1, oldest first), and wait for
# all of them; under `set -e` a seed whose training fails ends the script with its status.
train_seeds() {
  local pids=() seed pid
  for seed in "$@"; do
    train "$seed" &
    pids+=($!)
    if [ "${#pids[@]}" -ge "${PARALLEL:-1}" ]; then
      wait "${pids[0]}"
      pids=("${pids[@]:1}")
    fi
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
}
