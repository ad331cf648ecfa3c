#!/usr/bin/env bash
# Train on one machine with one or more GPUs (one JAX process sees every local GPU).
#
#   ./launch/gpu_single.sh --config=configs/train/qwen2_5_0_5b.py --config.model.path=/data/Qwen2.5-0.5B-Instruct
#   PREFLIGHT=1 ./launch/gpu_single.sh ...   # first `s1jax compile` for the config's target; stop if it does not fit
#
# Installs the CUDA build of JAX into .venv on first use (INSTALL=0 to skip). Rerunning the same command resumes
# from the latest checkpoint in train.output_dir; Ctrl-C / SIGTERM saves a checkpoint at the next step boundary.
set -euo pipefail
cd "$(dirname "$0")/.."

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
exec .venv/bin/s1jax train --config.distributed.mode=off "$@"
