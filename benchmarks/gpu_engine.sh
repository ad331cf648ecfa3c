#!/usr/bin/env bash
# The inference-engine GPU tables in one device call (< 8 minutes on one H100/H200; each step has its own timeout).
#   bash benchmarks/gpu_engine.sh [OUT_DIR]
# 1. decode table: Qwen2.5-1.5B shape, bf16, random weights, batch 1..64, roofline on the bytes actually read
#    (parameters + written KV slots), budget-forcing overhead, transformers generate on the same GPU;
# 2. skewed workload (64 questions, 16 slots, lognormal thinking lengths) static vs continuous, SmolLM2-135M;
# 3. decode step at capacity 256 vs 4096 slots, compile time 2K..32K slots.
set -u
OUT=${1:-${OUT:-bench_out}}
mkdir -p "$OUT"
PY=${PY:-python}
run() { local name=$1 limit=$2; shift 2; echo "== $name"; timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.txt"; }
run decode_table 200 $PY benchmarks/decode_throughput.py --preset qwen2_5_1_5b --dtype bfloat16 \
    --batch-sizes 1,4,16,64 --prompt-len 256 --new-tokens 512 --repeats 2
run skewed 150 $PY benchmarks/continuous_batching.py skewed --repeats 1
run capacity 40 $PY benchmarks/continuous_batching.py capacity --repeats 2
run compile 60 $PY benchmarks/continuous_batching.py compile --capacities 2048,8192,32768
