#!/usr/bin/env bash
# Train on one machine with one or more GPUs (one JAX process sees every local GPU).
#
#   ./launch/gpu_single.sh --config=configs/train/qwen2_5_0_5b.py --config.model.path=/data/Qwen2.5-0.5B-Instruct
#   PREFLIGHT=1 ./launch/gpu_single.sh ...   # first `s1jax compile` for the config's target; stop if it does not fit
#
# Installs the CUDA build of JAX into .venv on first use (INSTALL=0 to skip). Rerunning the same command resumes
# from the newest checkpoint that verifies in train.output_dir. Ctrl-C or SIGTERM saves a checkpoint of the current
# step at the next step boundary and exits (130 / 75); a second Ctrl-C or SIGTERM stops at once without saving.
#
# Exit codes (s1jax/exit_codes.py): 0 finished, 1 error, 2 config error, 3 non-finite loss, 74 storage failure,
# 75 preempted (checkpoint saved: rerun), 130 Ctrl-C (checkpoint saved). RETRY_PREEMPTED=N reruns up to N times
# after a 75 (e.g. a spot VM whose SIGTERM was a maintenance event and that keeps running).
set -euo pipefail
cd "$(dirname "$0")/.."

PREEMPTED_EXIT=75

if [[ "${INSTALL:-1}" == "1" && ! -x .venv/bin/s1jax ]]; then
  python3 -m venv .venv
  .venv/bin/pip install -q -U pip
  .venv/bin/pip install -q -e '.[gpu]'
fi

# Let XLA use most of the GPU memory up front and keep the CPU thread pool sane.
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.95}
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-1}
source launch/preflight.sh
preflight "$@"
retries=${RETRY_PREEMPTED:-0}
while true; do
  rc=0
  .venv/bin/s1jax train --config.distributed.mode=off "$@" || rc=$?
  if [[ $rc -eq $PREEMPTED_EXIT && $retries -gt 0 ]]; then
    retries=$((retries - 1))
    echo "gpu_single.sh: preempted (exit $rc), checkpoint saved; resuming ($retries retries left)" >&2
    continue
  fi
  exit $rc
done
