#!/usr/bin/env bash
# Sourced by the launchers: `preflight "$@"` runs `s1jax compile` with the training arguments when PREFLIGHT=1, on this
# one host and before any accelerator is used, and stops the launch with the compiler's message when a program does
# not fit its target (or the config is wrong). Needs the aot extra here (`make aot` or pip install -e '.[aot]').
#
#   PREFLIGHT=1 TPU_NAME=s1 ZONE=us-east5-a ./launch/tpu_pod.sh train --config=configs/train/s1_32b.py:v5p-128
preflight() {
  [[ "${PREFLIGHT:-0}" == "1" ]] || return 0
  local bin=${S1JAX_BIN:-.venv/bin/s1jax}
  echo "preflight: $bin compile $*" >&2
  local status=0
  "$bin" compile "$@" || status=$?
  if [[ $status -ne 0 ]]; then
    echo "preflight: stopped before launching (s1jax compile exit $status: 1 = does not fit, 2 = config/install error)" >&2
    exit "$status"
  fi
  echo "preflight: every program fits; launching" >&2
}
