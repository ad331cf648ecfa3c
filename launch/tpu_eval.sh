#!/usr/bin/env bash
# Evaluate on a Cloud TPU slice: the same `s1jax eval` command on every worker (host). jax.distributed starts by itself
# on a multi-host slice (distributed.mode=auto sees TPU_WORKER_HOSTNAMES); every host runs the same questions in the
# same order (checked: a host that read another file stops the run with both counts), process 0 (worker 0) alone
# writes results.jsonl / summary.json / results.md, and a rerun resumes from worker 0's results on every host.
#
#   TPU_NAME=s1-eval ZONE=us-east1-d ACCELERATOR=v6e-8 RUNTIME=v2-alpha-tpuv6e ./launch/tpu_pod.sh create
#   TPU_NAME=s1-eval ZONE=us-east1-d ./launch/tpu_pod.sh install
#   TPU_NAME=s1-eval ZONE=us-east1-d ./launch/tpu_eval.sh eval --config=configs/eval/s1_32b.py:v6e-8 \
#       --config.model.path=/mnt/disks/models/s1-32B
#   TPU_NAME=s1-eval ZONE=us-east1-d ./launch/tpu_eval.sh logs     # worker 0's log (the only one that prints)
#   TPU_NAME=s1-eval ZONE=us-east1-d ./launch/tpu_eval.sh status   # exit code once it ended (eval.exit)
#   TPU_NAME=s1-eval ZONE=us-east1-d ./launch/tpu_eval.sh fetch runs/eval   # copy worker 0's output dir here
#   TPU_NAME=s1-eval ZONE=us-east1-d ./launch/tpu_eval.sh stop     # SIGTERM: finished batches stay in results.jsonl
#
# Larger slices (several hosts): keep tensor within a host's chips and add data across hosts, with batch_size =
# rows per data shard x data, e.g. v6e-16 (2 hosts x 8 chips):
#   ./launch/tpu_eval.sh eval --config=configs/eval/s1_32b.py:v6e-8 --config.mesh.data=2 --config.batch_size=32 ...
# Every host reads the weights from its own disk (or a shared mount) at the same path.
set -euo pipefail

: "${TPU_NAME:?set TPU_NAME}"
: "${ZONE:?set ZONE}"
PROJECT_FLAG=${PROJECT:+--project=$PROJECT}
WORKDIR=${WORKDIR:-s1jax}

ssh_all() {
  gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" $PROJECT_FLAG --worker=all --command="$1"
}

ssh0() {
  gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" $PROJECT_FLAG --worker=0 --command="$1"
}

cmd=${1:-help}
shift || true
case "$cmd" in
  eval)
    args=$(printf ' %q' "$@")
    ssh_all "cd $WORKDIR && rm -f eval.exit && (nohup sh -c '.venv/bin/s1jax eval $args & echo \$! > eval.pid; \
      wait \$!; echo \$? > eval.exit' > eval.log 2>&1 &)"
    echo "started on all workers; follow with: $0 logs; exit code: $0 status"
    ;;
  logs)
    ssh0 "tail -f $WORKDIR/eval.log"
    ;;
  status)
    ssh0 "cat $WORKDIR/eval.exit 2>/dev/null || echo running"
    ;;
  fetch)
    dir=${1:?usage: $0 fetch OUTPUT_DIR (relative to the checkout on the TPU, e.g. runs/eval)}
    mkdir -p "$(dirname "$dir")"
    gcloud compute tpus tpu-vm scp --recurse "$TPU_NAME:$WORKDIR/$dir" "$(dirname "$dir")/" --zone="$ZONE" \
      $PROJECT_FLAG --worker=0
    ;;
  stop)
    ssh_all "cd $WORKDIR && kill -TERM \$(cat eval.pid) 2>/dev/null || true"
    ;;
  *)
    sed -n '2,22p' "$0"
    ;;
esac
